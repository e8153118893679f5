"""Checkpoints: everything a run needs to continue exactly, in one safetensors file.

A checkpoint is a single safetensors file (so it is written atomically as a whole and opening it can
never run code). Arrays:

* ``model/<name>``: every parameter and state array of the model;
* ``optimizer/<key>``: the optimizer's ``state_dict()``;
* ``callback/<id>/<key>``: array entries of a callback's ``state_dict()``.

The header metadata holds ``format = "numpyml-checkpoint"``, ``format_version`` and ``state``: JSON
with the epoch and batch position, the optimizer step count, the losses of the epoch in progress,
the metrics history, the bit-generator states of the run's random generators (initialization and
dropout, shuffling, augmentation, and the shuffling state at the start of the current epoch), the
control flags, the resolved experiment and the JSON part of every stateful callback's state.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .serialization import load_tensors, read_metadata, save_tensors

FORMAT = "numpyml-checkpoint"
FORMAT_VERSION = "1"


def _json_default(value: Any) -> str:
    if isinstance(value, (datetime.date, datetime.time)):  # TOML dates and times in an experiment's parameters
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def config_as_json(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved experiment as the checkpoint stores it (TOML dates and times as ISO strings), to
    compare a checkpoint's ``config`` with an experiment."""
    return json.loads(json.dumps(config, default=_json_default))


def config_digest(config: dict[str, Any]) -> str:
    """A digest of a resolved experiment (``ExperimentSpec.to_dict()``), to detect changes."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=_json_default).encode()).hexdigest()


def callback_keys(callbacks: list[Any]) -> list[str]:
    """Stable identities for a run's callbacks: class path plus occurrence number."""
    seen: dict[str, int] = {}
    keys = []
    for callback in callbacks:
        name = f"{type(callback).__module__}.{type(callback).__qualname__}"
        seen[name] = seen.get(name, 0) + 1
        keys.append(f"{name}#{seen[name]}")
    return keys


def _rng_state(rng: np.random.Generator) -> dict[str, Any]:
    return rng.bit_generator.state


def _set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    rng.bit_generator.state = state


def check_finite(run: Any) -> None:
    """Refuse to checkpoint non-finite parameters (the last good checkpoint stays)."""
    from .trainer import check_parameters

    check_parameters(run, f"after epoch {run.epoch + (run.batch > 0)}, batch {run.batch or run.batches_per_epoch}",
                     " The last good checkpoint was kept.")


def capture(run: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The run's complete state as (arrays, JSON-serialisable dict)."""
    tensors: dict[str, np.ndarray] = {f"model/{k}": v for k, v in run.model.tensors().items()}
    for key, value in run.optimizer.state_dict().items():
        tensors[f"optimizer/{key}"] = np.asarray(value)
    callbacks: dict[str, Any] = {}
    for key, callback in zip(callback_keys(run.callbacks), run.callbacks):
        state_dict = getattr(callback, "state_dict", None)
        if state_dict is None:
            continue
        json_part = {}
        for name, value in state_dict().items():
            if isinstance(value, np.ndarray):
                tensors[f"callback/{key}/{name}"] = value
            else:
                json_part[name] = value
        callbacks[key] = json_part
    hooks_state: dict[str, Any] = {}
    run.hooks.numpyml_on_checkpoint_save(run=run, state=hooks_state)
    config = run.spec.to_dict()
    state = {
        "epoch": run.epoch,
        "batch": run.batch,
        "step": run.step,
        "epoch_losses": list(run.epoch_losses),
        "history": run.history,
        "rng": {
            "init": _rng_state(run.init_rng),
            "shuffle": _rng_state(run.shuffle_rng),
            "augment": _rng_state(run.augment_rng),
            "epoch_shuffle": run.epoch_shuffle_state,
        },
        "learning_rate": float(getattr(run.optimizer, "learning_rate", math.nan)),
        "control": {"should_stop": run.control.should_stop, "stop_reason": run.control.stop_reason},
        "callbacks": callbacks,
        "hooks": hooks_state,
        "config": config,
        "config_digest": config_digest(config),
    }
    return tensors, state


def save_checkpoint(path: str | Path, run: Any) -> None:
    """Write the run's state to ``path`` atomically (refusing non-finite parameters)."""
    check_finite(run)
    tensors, state = capture(run)
    from . import __version__

    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "numpyml_version": __version__,
                "state": json.dumps(state, default=_json_default)}
    save_tensors(path, tensors, metadata)


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, state) of a checkpoint file; a clear :class:`UserError` for anything else."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: not a numpyml checkpoint (its metadata has no 'format = {FORMAT}').")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format version {meta.get('format_version')!r} is not supported "
                        f"by this numpyml (it reads version {FORMAT_VERSION}).")
    try:
        state = json.loads(meta["state"])
    except (KeyError, json.JSONDecodeError):
        raise UserError(f"{path}: the checkpoint's state metadata is missing or malformed.") from None
    return load_tensors(path), state


def restore(run: Any, tensors: dict[str, np.ndarray], state: dict[str, Any], source: str = "checkpoint") -> None:
    """Put a run back in the state :func:`capture` recorded."""
    try:
        run.model.load_tensors({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        run.optimizer.load_state_dict(
            {k[len("optimizer/"):]: v for k, v in tensors.items() if k.startswith("optimizer/")}
        )
    except (ValueError, KeyError) as exc:
        raise UserError(f"{source}: does not fit this experiment's network or optimizer: {exc}.") from None
    run.epoch = int(state["epoch"])
    run.batch = int(state["batch"])
    run.step = int(state["step"])
    run.epoch_losses = [float(x) for x in state["epoch_losses"]]
    run.history = list(state["history"])
    rng = state["rng"]
    _set_rng_state(run.init_rng, rng["init"])
    _set_rng_state(run.shuffle_rng, rng["shuffle"])
    _set_rng_state(run.augment_rng, rng["augment"])
    run.epoch_shuffle_state = rng["epoch_shuffle"]
    if hasattr(run.optimizer, "learning_rate") and math.isfinite(state.get("learning_rate", math.nan)):
        run.optimizer.learning_rate = state["learning_rate"]
    run.control.should_stop = bool(state["control"]["should_stop"])
    run.control.stop_reason = state["control"]["stop_reason"]
    saved = state.get("callbacks", {})
    for key, callback in zip(callback_keys(run.callbacks), run.callbacks):
        load_state_dict = getattr(callback, "load_state_dict", None)
        if load_state_dict is None or key not in saved:
            continue
        prefix = f"callback/{key}/"
        load_state_dict({**saved[key], **{k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}})
    run.hooks.numpyml_on_checkpoint_load(run=run, state=state.get("hooks", {}))
