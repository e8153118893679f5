"""Checkpoints: all a run needs to continue exactly, in one safetensors file (docs/reliability.md): tensors
``model/*``, ``optimizer/*``, ``callback/<id>/*``; metadata ``format``, ``format_version``, ``state`` (JSON)."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .errors import UserError
from .serialization import (refuse_non_finite, describe, is_int, load_tensors, parse_metadata_json, read_metadata,
                            save_tensors, schema_check)

FORMAT = "numpyml-checkpoint"
FORMAT_VERSION = "1"
_RNGS = ("init", "shuffle", "augment")  # the run's generators: run.init_rng, ...
_DAMAGED = " The checkpoint is damaged or was not written by numpyml; remove it to start the run again."


def _json_default(value: Any) -> str:
    if isinstance(value, (datetime.date, datetime.time)):  # TOML dates and times in an experiment's parameters
        return value.isoformat()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def config_as_json(config: dict[str, Any]) -> dict[str, Any]:
    """A resolved experiment as a checkpoint stores it (TOML dates and times as ISO strings)."""
    return json.loads(json.dumps(config, default=_json_default))


def callback_keys(callbacks: list[Any]) -> list[str]:
    """Stable identities for a run's callbacks: class path plus occurrence number."""
    seen: dict[str, int] = {}
    keys = []
    for callback in callbacks:
        name = f"{type(callback).__module__}.{type(callback).__qualname__}"
        seen[name] = seen.get(name, 0) + 1
        keys.append(f"{name}#{seen[name]}")
    return keys


def capture(run: Any) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The run's complete state as (arrays, JSON-serialisable dict)."""
    tensors: dict[str, np.ndarray] = {f"model/{k}": v for k, v in run.model.tensors().items()}
    tensors.update({f"optimizer/{k}": np.asarray(v) for k, v in run.optimizer.state_dict().items()})
    callbacks: dict[str, Any] = {}
    for key, callback in zip(callback_keys(run.callbacks), run.callbacks):
        if getattr(callback, "state_dict", None) is not None:
            callbacks[key] = {}
            for name, value in callback.state_dict().items():
                if isinstance(value, np.ndarray):
                    tensors[f"callback/{key}/{name}"] = value
                else:
                    callbacks[key][name] = value
    hooks_state: dict[str, Any] = {}
    run.hooks.numpyml_on_checkpoint_save(run=run, state=hooks_state)
    return tensors, {
        "epoch": run.epoch, "batch": run.batch, "step": run.step, "epoch_losses": list(run.epoch_losses),
        "history": run.history,
        "rng": {**{name: getattr(run, f"{name}_rng").bit_generator.state for name in _RNGS},
                "epoch_shuffle": run.epoch_shuffle_state},
        "learning_rate": float(getattr(run.optimizer, "learning_rate", math.nan)),
        "control": {"should_stop": run.control.should_stop, "stop_reason": run.control.stop_reason},
        "callbacks": callbacks, "hooks": hooks_state, "config": run.spec.to_dict(),
    }


def save_checkpoint(path: str | Path, run: Any) -> None:
    """Write the run's state to ``path`` atomically, refusing non-finite parameters (the last good one stays)."""
    from . import __version__
    from .trainer import raise_if_diverged

    raise_if_diverged(run, f"after epoch {run.epoch + (run.batch > 0)}, batch {run.batch or run.batches_per_epoch}",
                     " The last good checkpoint was kept.")
    tensors, state = capture(run)
    save_tensors(path, tensors, {"format": FORMAT, "format_version": FORMAT_VERSION, "numpyml_version": __version__,
                                 "state": json.dumps(state, default=_json_default)})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _bit_generator_problem(value: Any) -> str | None:
    """Why ``value`` is not a state NumPy's bit generators accept (tried on a scratch one), or ``None``."""
    if not isinstance(value, dict):
        return "an object"
    name = value.get("bit_generator")
    kind = getattr(np.random, name, None) if isinstance(name, str) else None
    if not (isinstance(kind, type) and issubclass(kind, np.random.BitGenerator)):
        return f"unknown bit_generator {describe(name)}"
    try:
        kind().state = value
    except (TypeError, ValueError, KeyError, OverflowError, AttributeError) as exc:
        return f"NumPy refuses it: {exc}"
    return None


def validate_state(state: Any, path: str | Path) -> dict[str, Any]:
    """Check the parsed ``state`` of a checkpoint against the schema :func:`capture` writes (types, and
    ``0 <= epoch <=`` the run's epochs); return it. :func:`restore` checks the batch against the epoch."""
    need = schema_check(path, "checkpoint state", "state", _DAMAGED)
    need(isinstance(state, dict), (), state, "an object (the run's state)")
    config = state.get("config")
    need(isinstance(config, dict), ("config",), config, "an object (the resolved experiment)")
    epochs = config["training"].get("epochs") if isinstance(config.get("training"), dict) else None
    need(is_int(epochs) and epochs >= 1, ("config", "training", "epochs"), epochs, "a positive integer")
    epoch, batch, step = state.get("epoch"), state.get("batch"), state.get("step")
    need(is_int(epoch) and 0 <= epoch <= epochs, ("epoch",), epoch, f"an integer from 0 to {epochs} (the run's epochs)")
    need(is_int(batch) and batch >= 0, ("batch",), batch, "a non-negative integer (batches done in the current epoch)")
    need(epoch < epochs or batch == 0, ("batch",), batch, f"0 once all {epochs} epochs are done")
    need(is_int(step) and step >= 0, ("step",), step, "a non-negative integer (the optimizer's step count)")
    losses, history = state.get("epoch_losses"), state.get("history")
    need(isinstance(losses, list), ("epoch_losses",), losses, "a list of numbers (the losses of the epoch in progress)")
    for i, loss in enumerate(losses):
        need(_is_number(loss), ("epoch_losses", i), loss, "a number")
    need(isinstance(history, list), ("history",), history, "a list of objects (the metrics of each epoch)")
    for i, row in enumerate(history):
        need(isinstance(row, dict), ("history", i), row, "an object (one epoch's metrics)")
    rng = state.get("rng")
    need(isinstance(rng, dict), ("rng",), rng, "an object of random generator states")
    for name in (*_RNGS, "epoch_shuffle"):
        problem = None if name == "epoch_shuffle" and rng.get(name) is None else _bit_generator_problem(rng.get(name))
        need(problem is None, ("rng", name), rng.get(name), f"a NumPy bit generator state ({problem})")
    rate = state.get("learning_rate", 0.0)
    need(_is_number(rate), ("learning_rate",), rate, "a number")
    control = state.get("control")
    need(isinstance(control, dict), ("control",), control, "an object with 'should_stop' and 'stop_reason'")
    stop, reason = control.get("should_stop"), control.get("stop_reason")
    need(isinstance(stop, bool), ("control", "should_stop"), stop, "true or false")
    need(isinstance(reason, (str, type(None))), ("control", "stop_reason"), reason, "a string")
    for key in ("callbacks", "hooks"):
        need(isinstance(state.get(key, {}), dict), (key,), state.get(key), "an object")
    for key, value in state.get("callbacks", {}).items():
        need(isinstance(value, dict), ("callbacks", key), value, "an object (a callback's state)")
    return state


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, state) of a checkpoint file; a :class:`UserError` for a state that fails
    :func:`validate_state` or model or optimizer arrays that are not finite."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: not a numpyml checkpoint (its metadata has no 'format = {FORMAT}').")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format version {meta.get('format_version')!r} is not supported "
                        f"by this numpyml (it reads version {FORMAT_VERSION}).")
    state = validate_state(parse_metadata_json(meta, "state", path, "the run's state"), path)
    tensors = load_tensors(path)
    refuse_non_finite({k: v for k, v in tensors.items() if k.startswith(("model/", "optimizer/"))}, path,
                 "parameters or optimizer state")
    return tensors, state


def _under(tensors: dict[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def restore(run: Any, tensors: dict[str, np.ndarray], state: dict[str, Any], source: str = "checkpoint") -> None:
    """Put a run back in the state :func:`capture` recorded."""
    try:
        run.model.load_tensors(_under(tensors, "model/"))
        run.optimizer.load_state_dict(_under(tensors, "optimizer/"))
    except (ValueError, KeyError) as exc:
        raise UserError(f"{source}: does not fit this experiment's network or optimizer: {exc}.") from None
    need = schema_check(source, "checkpoint state", "state", _DAMAGED)
    need(state["batch"] <= run.batches_per_epoch, ("batch",), state["batch"],
         f"at most the {run.batches_per_epoch} batches of an epoch")
    run.epoch, run.batch, run.step = int(state["epoch"]), int(state["batch"]), int(state["step"])
    run.epoch_losses = [float(x) for x in state["epoch_losses"]]
    run.history = list(state["history"])
    for name in _RNGS:
        try:
            getattr(run, f"{name}_rng").bit_generator.state = state["rng"][name]
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"{source}: 'state.rng.{name}' does not fit this run's random generator ({exc}).") from None
    run.epoch_shuffle_state = state["rng"]["epoch_shuffle"]
    if hasattr(run.optimizer, "learning_rate") and math.isfinite(state.get("learning_rate", math.nan)):
        run.optimizer.learning_rate = state["learning_rate"]
    run.control.should_stop = bool(state["control"]["should_stop"])
    run.control.stop_reason = state["control"]["stop_reason"]
    saved = state.get("callbacks", {})
    for key, callback in zip(callback_keys(run.callbacks), run.callbacks):
        if getattr(callback, "load_state_dict", None) is not None and key in saved:
            callback.load_state_dict({**saved[key], **_under(tensors, f"callback/{key}/")})
    run.hooks.numpyml_on_checkpoint_load(run=run, state=state.get("hooks", {}))
