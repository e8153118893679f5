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
from .serialization import (
    check_finite as check_finite_tensors,
    describe,
    is_int,
    key_path,
    load_tensors,
    parse_metadata_json,
    read_metadata,
    save_tensors,
)

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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_state(state: Any, path: str | Path) -> dict[str, Any]:
    """Check the parsed ``state`` metadata of a checkpoint against the schema :func:`capture` writes;
    return it. Types and ranges: ``0 <= epoch <= config.training.epochs`` (the run's own), ``batch``
    and ``step`` non-negative integers (``batch`` 0 once every epoch is done; its upper bound, the
    batches per epoch, is checked by :func:`restore`), losses numbers, the history a list of objects,
    each generator state one NumPy accepts, ``control``, ``callbacks`` and ``hooks`` objects, the
    resolved experiment ``config`` an object. Anything else is a :class:`UserError` naming the file
    and the key path (``state.rng.shuffle``).
    """
    def fail(where: tuple[Any, ...], value: Any, expected: str) -> None:
        raise UserError(f"{path}: malformed checkpoint state: '{key_path(('state', *where))}' is "
                        f"{describe(value)}, expected {expected}. The checkpoint is damaged or was not written "
                        "by numpyml; remove it to start the run again.")

    if not isinstance(state, dict):
        fail((), state, "an object (the run's state)")
    config = state.get("config")
    if not isinstance(config, dict):
        fail(("config",), config, "an object (the resolved experiment)")
    training = config.get("training")
    epochs = training.get("epochs") if isinstance(training, dict) else None
    if not (is_int(epochs) and epochs >= 1):
        fail(("config", "training", "epochs"), epochs, "a positive integer")
    epoch = state.get("epoch")
    if not (is_int(epoch) and 0 <= epoch <= epochs):
        fail(("epoch",), epoch, f"an integer from 0 to {epochs} (the run's epochs)")
    batch = state.get("batch")
    if not (is_int(batch) and batch >= 0):
        fail(("batch",), batch, "a non-negative integer (batches done in the current epoch)")
    if epoch == epochs and batch != 0:
        fail(("batch",), batch, f"0 once all {epochs} epochs are done")
    step = state.get("step")
    if not (is_int(step) and step >= 0):
        fail(("step",), step, "a non-negative integer (the optimizer's step count)")
    losses = state.get("epoch_losses")
    if not isinstance(losses, list):
        fail(("epoch_losses",), losses, "a list of numbers (the losses of the epoch in progress)")
    for i, loss in enumerate(losses):
        if not _is_number(loss):
            fail(("epoch_losses", i), loss, "a number")
    history = state.get("history")
    if not isinstance(history, list):
        fail(("history",), history, "a list of objects (the metrics of each epoch)")
    for i, row in enumerate(history):
        if not isinstance(row, dict):
            fail(("history", i), row, "an object (one epoch's metrics)")
    rng = state.get("rng")
    if not isinstance(rng, dict):
        fail(("rng",), rng, "an object of random generator states")
    for name in ("init", "shuffle", "augment", "epoch_shuffle"):
        value = rng.get(name)
        if name == "epoch_shuffle" and value is None:
            continue
        problem = _bit_generator_problem(value)
        if problem:
            fail(("rng", name), value, f"a NumPy bit generator state ({problem})")
    if "learning_rate" in state and not _is_number(state["learning_rate"]):
        fail(("learning_rate",), state["learning_rate"], "a number")
    control = state.get("control")
    if not isinstance(control, dict):
        fail(("control",), control, "an object with 'should_stop' and 'stop_reason'")
    if not isinstance(control.get("should_stop"), bool):
        fail(("control", "should_stop"), control.get("should_stop"), "true or false")
    if not isinstance(control.get("stop_reason"), (str, type(None))):
        fail(("control", "stop_reason"), control.get("stop_reason"), "a string")
    for key in ("callbacks", "hooks"):
        if not isinstance(state.get(key, {}), dict):
            fail((key,), state[key], "an object")
    for key, value in state.get("callbacks", {}).items():
        if not isinstance(value, dict):
            fail(("callbacks", key), value, "an object (a callback's state)")
    return state


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


def read_checkpoint(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(arrays, state) of a checkpoint file; a clear :class:`UserError` for anything else: a state
    that fails :func:`validate_state`, model or optimizer arrays that are not finite."""
    meta = read_metadata(path)
    if meta.get("format") != FORMAT:
        raise UserError(f"{path}: not a numpyml checkpoint (its metadata has no 'format = {FORMAT}').")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: checkpoint format version {meta.get('format_version')!r} is not supported "
                        f"by this numpyml (it reads version {FORMAT_VERSION}).")
    state = validate_state(parse_metadata_json(meta, "state", path, "the run's state"), path)
    tensors = load_tensors(path)
    check_finite_tensors({k: v for k, v in tensors.items() if k.startswith(("model/", "optimizer/"))}, path,
                         "parameters or optimizer state")
    return tensors, state


def restore(run: Any, tensors: dict[str, np.ndarray], state: dict[str, Any], source: str = "checkpoint") -> None:
    """Put a run back in the state :func:`capture` recorded."""
    try:
        run.model.load_tensors({k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")})
        run.optimizer.load_state_dict(
            {k[len("optimizer/"):]: v for k, v in tensors.items() if k.startswith("optimizer/")}
        )
    except (ValueError, KeyError) as exc:
        raise UserError(f"{source}: does not fit this experiment's network or optimizer: {exc}.") from None
    if state["batch"] > run.batches_per_epoch:
        raise UserError(f"{source}: malformed checkpoint state: 'state.batch' is {state['batch']}, expected at most "
                        f"the {run.batches_per_epoch} batches of an epoch. The checkpoint is damaged or was "
                        "not written by numpyml; remove it to start the run again.")
    run.epoch = int(state["epoch"])
    run.batch = int(state["batch"])
    run.step = int(state["step"])
    run.epoch_losses = [float(x) for x in state["epoch_losses"]]
    run.history = list(state["history"])
    rng = state["rng"]
    for name, generator in (("init", run.init_rng), ("shuffle", run.shuffle_rng), ("augment", run.augment_rng)):
        try:
            _set_rng_state(generator, rng[name])
        except (TypeError, ValueError, KeyError) as exc:
            raise UserError(f"{source}: 'state.rng.{name}' does not fit this run's random generator ({exc}).") from None
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
