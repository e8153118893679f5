"""What every built-in update rule shares: argument checks, gradient checks, clipping by global
norm, scratch buffers and parameter groups."""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from numpyml_core import ConfigError

#: the keys of one ``[[optimizer.groups]]`` table
GROUP_KEYS = ("params", "lr_scale", "learning_rate", "weight_decay", "l2", "frozen", "frozen_after_step")

GROUPS_DOC = """
    Parameter groups (``groups``, a list of tables: ``[[optimizer.groups]]`` in an experiment file)
    give some parameters other settings. Parameters are named ``"<layer index>.<name>"`` (``"0.weight"``,
    ``"3.beta"``: ``numpyml info`` and the model file list them); each parameter takes the first
    group whose ``params`` (a glob or a list of globs, ``fnmatch`` style: ``"*.bias"``, ``"0.*"``)
    matches its name, and the optimizer's own settings when none does. Keys of a group, all optional
    but ``params``:

    * ``lr_scale`` (> 0): its learning rate is the optimizer's (scheduled) rate times this;
      ``learning_rate`` (> 0) instead sets the ratio to the optimizer's ``learning_rate``, so it
      follows the schedule too;
    * ``weight_decay`` / ``l2`` (>= 0): replace the optimizer's, and apply to **every** parameter
      of the group (not only to names ending in ``weight``);
    * ``frozen`` (true): never updated (and has no optimizer state); ``frozen_after_step`` (N >= 0):
      updated during the first N steps only (airbench trains its whitening bias for a few epochs).

    A group that matches no parameter is an error at the first step (a misspelt glob would
    otherwise change nothing)."""


@dataclass(frozen=True)
class Group:
    """One resolved parameter group (see :data:`GROUPS_DOC`)."""

    patterns: tuple[str, ...]
    lr_scale: float = 1.0
    weight_decay: float | None = None
    l2: float | None = None
    frozen_after_step: int | None = None  # 0: frozen


def parse_groups(groups: Any, learning_rate: float) -> list[Group]:
    """Check the ``groups`` tables (``ValueError`` saying which group and key is wrong) and resolve
    them; ``learning_rate`` is the optimizer's, for a group's ``learning_rate``."""
    if groups is None:
        return []
    if not isinstance(groups, (list, tuple)):
        raise ValueError(f"groups must be a list of tables ([[optimizer.groups]]), got {groups!r}")
    resolved = []
    for number, table in enumerate(groups, 1):
        where = f"groups #{number}"
        if not isinstance(table, dict):
            raise ValueError(f"{where}: expected a table with 'params' and settings, got {table!r}")
        unknown = sorted(set(table) - set(GROUP_KEYS))
        if unknown:
            raise ValueError(f"{where}: unknown keys {unknown}; a group takes {', '.join(GROUP_KEYS)}")
        patterns = table.get("params")
        if isinstance(patterns, str):
            patterns = [patterns]
        if (not isinstance(patterns, (list, tuple)) or not patterns
                or not all(isinstance(p, str) and p for p in patterns)):
            raise ValueError(f"{where}: 'params' must be a glob or a non-empty list of globs naming parameters "
                             f"(\"*.bias\", \"0.*\"), got {table.get('params')!r}")

        def number_at_least(key: str, minimum: float, strict: bool) -> float | None:
            value = table.get(key)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or (
                    value <= minimum if strict else value < minimum):
                raise ValueError(f"{where}: '{key}' must be a number {'>' if strict else '>='} {minimum:g}, "
                                 f"got {value!r}")
            return float(value)

        lr_scale = number_at_least("lr_scale", 0, True)
        rate = number_at_least("learning_rate", 0, True)
        if lr_scale is not None and rate is not None:
            raise ValueError(f"{where}: give either 'lr_scale' or 'learning_rate', not both")
        if rate is not None:
            lr_scale = rate / learning_rate
        frozen = table.get("frozen", False)
        if not isinstance(frozen, bool):
            raise ValueError(f"{where}: 'frozen' must be true or false, got {frozen!r}")
        after = table.get("frozen_after_step")
        if after is not None and (isinstance(after, bool) or not isinstance(after, int) or after < 0):
            raise ValueError(f"{where}: 'frozen_after_step' must be an integer >= 0, got {after!r}")
        resolved.append(Group(
            patterns=tuple(patterns), lr_scale=1.0 if lr_scale is None else lr_scale,
            weight_decay=number_at_least("weight_decay", 0, False), l2=number_at_least("l2", 0, False),
            frozen_after_step=0 if frozen else after,
        ))
    return resolved


@dataclass(frozen=True)
class Settings:
    """What one parameter gets at one step."""

    lr_scale: float
    l2: float
    weight_decay: float
    frozen: bool


def check_common(learning_rate: float, l2: float, weight_decay: float, clip_norm: float | None) -> None:
    """``ValueError`` for the settings every rule has (the core turns it into a config error)."""
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be greater than 0, got {learning_rate}")
    if not l2 >= 0:
        raise ValueError(f"l2 must be at least 0, got {l2}")
    if not weight_decay >= 0:
        raise ValueError(f"weight_decay must be at least 0, got {weight_decay}")
    if clip_norm is not None and not clip_norm > 0:
        raise ValueError(f"clip_norm must be greater than 0 (or left out for no clipping), got {clip_norm}")


class UpdateRule:
    """Base of the built-in optimizers: subclasses set ``clip_norm`` and ``_scratch``."""

    clip_norm: float | None
    l2: float
    weight_decay: float
    iterations: int
    _scratch: dict[tuple[int, np.dtype], np.ndarray]
    _groups: list[Group]
    _group_of: dict[str, Group | None]

    def _init_groups(self, groups: Any, learning_rate: float) -> None:
        self.groups = None if groups is None else [dict(g) for g in groups]
        self._groups = parse_groups(groups, learning_rate)
        self._group_of = {}
        self._settings_key: tuple[Any, ...] | None = None
        self._settings_cache: dict[str, Settings] = {}

    def _settings(self, params: Mapping[str, np.ndarray]) -> dict[str, Settings]:
        """Every parameter's settings for the step about to be taken (``self.iterations`` done): worked out
        again only when what they depend on changes (9 us of a 4-parameter step otherwise)."""
        key = (tuple(params), self.l2, self.weight_decay,
               tuple(self.iterations >= g.frozen_after_step for g in self._groups if g.frozen_after_step is not None))
        if key != self._settings_key:
            self._settings_cache = self._resolve_settings(params)
            self._settings_key = key
        return self._settings_cache

    def _resolve_settings(self, params: Mapping[str, np.ndarray]) -> dict[str, Settings]:
        if self._groups and any(name not in self._group_of for name in params):
            for name in params:
                self._group_of[name] = next(
                    (g for g in self._groups if any(fnmatch.fnmatchcase(name, p) for p in g.patterns)), None)
            used = {id(g) for g in self._group_of.values() if g is not None}
            for number, group in enumerate(self._groups, 1):
                if id(group) not in used:
                    raise ConfigError(
                        f"[optimizer] groups #{number}: params = {list(group.patterns)} matches no parameter "
                        f"(or only parameters an earlier group took); the parameters are {', '.join(params)}.")
        settings = {}
        for name in params:
            group = self._group_of.get(name) if self._groups else None
            decay = name.endswith("weight")
            if group is None:
                settings[name] = Settings(1.0, self.l2 if decay else 0.0, self.weight_decay if decay else 0.0, False)
                continue
            l2 = group.l2 if group.l2 is not None else (self.l2 if decay else 0.0)
            wd = group.weight_decay if group.weight_decay is not None else (self.weight_decay if decay else 0.0)
            frozen = group.frozen_after_step is not None and self.iterations >= group.frozen_after_step
            settings[name] = Settings(group.lr_scale, l2, wd, frozen)
        return settings

    @staticmethod
    def _check_gradients(params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Before any parameter changes: every parameter has a gradient of its shape."""
        missing = sorted(set(params) - set(grads))
        if missing:
            raise ValueError(f"no gradient for parameters {missing}")
        for name, weight in params.items():
            if grads[name].shape != weight.shape:
                raise ValueError(f"gradient of '{name}' has shape {grads[name].shape}, the parameter {weight.shape}")

    def _clip_scale(self, grads: Mapping[str, np.ndarray], settings: Mapping[str, Settings]) -> float:
        """The factor that brings the global L2 norm of the gradients of the parameters ``settings`` updates (not
        frozen) down to ``clip_norm`` (1 if below)."""
        if self.clip_norm is None:
            return 1.0
        squares = 0.0
        for name, grad in grads.items():
            if name not in settings or settings[name].frozen:
                continue
            flat = grad.reshape(-1)
            squares += float(np.dot(flat, flat))
        norm = squares ** 0.5
        return self.clip_norm / norm if norm > self.clip_norm else 1.0

    def _buffer(self, like: np.ndarray, slot: int) -> np.ndarray:
        """A scratch array shaped like ``like``: a view into one flat buffer per (slot, dtype),
        grown to the largest parameter, so a step allocates nothing after the first."""
        key = (slot, like.dtype)
        flat = self._scratch.get(key)
        if flat is None or flat.size < like.size:
            flat = self._scratch[key] = np.empty(like.size, dtype=like.dtype)
        return flat[: like.size].reshape(like.shape)
