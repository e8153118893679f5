"""The Python API (docs/api.md): load and check an experiment, run it into a run folder, load and evaluate a
model; what the ``numpyml`` commands run, resume, validate and eval call."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from .bundled import experiment_path
from .checkpoint import config_as_json, restore
from .config import ExperimentSpec, dumps_toml, parse_experiment, parse_overrides, parse_with_overrides, read_toml
from .data import data_dir_from_env
from .errors import ConfigError, UserError
from .model import Model
from .plugins import PluginManager, get_plugin_manager
from .runfolder import RunFolder, claim_default, claim_new, lock_existing, resume_point
from .trainer import (Run, TrainingInterrupted, prepare, register_callbacks, train, unregister_callbacks,
                      validate_experiment)
from .trainer import evaluate as evaluate_split

__all__ = ["Experiment", "RunResult", "TrainingInterrupted", "evaluate", "load_model", "parse_overrides", "resume",
           "run"]

log = logging.getLogger("numpyml")

#: The callbacks :func:`run` adds unless the experiment lists them itself (``progress`` first, when asked).
DEFAULT_CALLBACKS = ("metrics_csv", "checkpoint")


@dataclass(frozen=True)
class Experiment:
    """A validated experiment (every component known, every parameter checked and defaulted): ``spec``, the
    resolved ExperimentSpec, and ``manager``, the plugin manager it was validated against and is built with."""

    spec: ExperimentSpec
    manager: PluginManager

    @classmethod
    def load(cls, path: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
             manager: PluginManager | None = None) -> "Experiment":
        """Read and validate the experiment file ``path`` (a bare name with no such file: a bundled experiment),
        with ``overrides`` (dotted keys to values, a number indexing a list: ``{"model.layers.1.units": 64}``)
        validated as its own keys. Raises ConfigError."""
        path = experiment_path(path)
        return cls.from_dict(read_toml(path), str(path), overrides, manager)

    @classmethod
    def from_dict(cls, table: Mapping[str, Any], source: str = "<dict>", overrides: Mapping[str, Any] | None = None,
                  manager: PluginManager | None = None) -> "Experiment":
        """Validate nested dicts (what ``tomllib`` returns) exactly as a file; errors name ``source``."""
        manager = manager or get_plugin_manager()
        if not isinstance(table, Mapping):
            raise ConfigError(f"{source}: an experiment is a table (dict), got {type(table).__name__}.")
        return cls(parse_with_overrides(dict(table), source, manager.registry, dict(overrides or {})), manager)

    @property
    def name(self) -> str:
        """The experiment's name (default run folders are ``runs/<name>-<time>``)."""
        return self.spec.name

    @property
    def source(self) -> str:
        """Where it came from: the file's path, or the ``source`` given to :meth:`from_dict`."""
        return self.spec.source

    def to_dict(self) -> dict[str, Any]:
        """The resolved experiment (every parameter, defaults included), as a run's config.toml holds it."""
        return self.spec.to_dict()

    def validate(self) -> Model:
        """Check all that needs no data (shapes, output size, the callbacks' own checks); the untrained network."""
        model = validate_experiment(self.spec, self.manager)
        _make_callbacks(self, [])  # what their constructors refuse (a metrics file named config.toml)
        return model


@dataclass
class RunResult:
    """What :func:`run` returns: ``summary`` (summary.json's figures), ``folder``, the trained ``model``, and
    the trainer's ``run`` as callbacks saw it."""

    summary: dict[str, Any]
    folder: RunFolder
    model: Model
    run: Run

    @property
    def run_dir(self) -> Path:
        """The run folder's path."""
        return self.folder.path

    @property
    def history(self) -> list[dict[str, Any]]:
        """The metrics of each epoch (the rows of metrics.csv)."""
        return self.run.history


def _make_callbacks(experiment: Experiment, defaults: list[str]) -> list[Any]:
    """The run's callbacks: the ``defaults`` the experiment does not list itself, then its own."""
    spec, manager = experiment.spec, experiment.manager
    callbacks: list[Any] = []
    for name in (name for name in defaults if name not in {c.type for c in spec.callbacks}):
        if ("callback", name) in manager.registry.components:
            callbacks.append(manager.create("callback", name))
        else:
            warnings.warn(f"the default callback '{name}' is not installed (plugin disabled?)", stacklevel=3)
    return callbacks + [component.create(manager) for component in spec.callbacks]


def resolved_config(experiment: Experiment) -> str:
    """The text of a run's config.toml: the resolved experiment and the versions used to run it."""
    from . import __version__

    spec, manager = experiment.spec, experiment.manager
    entries = [manager.registry.get(c.kind, c.type) for c in [spec.dataset, *spec.layers, spec.cost, spec.optimizer,
               spec.strategy, spec.schedule, *spec.transforms, *spec.callbacks] if c is not None]
    used = {entry.distribution: entry.version for entry in entries}
    config = spec.to_dict()
    config["provenance"] = {"numpyml": __version__, "python": sys.version.split()[0], "distributions": used}
    try:
        return f"# resolved experiment of {spec.source}\n" + dumps_toml(config)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{spec.source}: the resolved experiment cannot be written as TOML ({exc}).") from None


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            keys.append(f"{prefix}{key}")
    return keys


def _resume_checkpoint(experiment: Experiment, folder: RunFolder, allow_changes: bool) -> Any:
    """The checkpoint a resume of ``folder`` continues from (``None``: start from the beginning), after
    refusing an experiment that differs from the run's unless ``allow_changes``."""
    spec = experiment.spec
    saved = parse_experiment(folder.read_config(), str(folder.config_path), experiment.manager.registry).to_dict()
    changed = _differences(saved, spec.to_dict())
    metrics_files = [str(c.params.get("filename", RunFolder.METRICS))
                     for c in spec.callbacks if c.type == "metrics_csv"]
    checkpoint = None
    if resume_point(folder, metrics_files or [RunFolder.METRICS]) is not None:
        checkpoint = folder.read_checkpoint("last")
        changed += [f"{key} (since the checkpoint)"
                    for key in _differences(checkpoint[1]["config"], config_as_json(spec.to_dict()))
                    if key not in changed]
    if changed and not allow_changes:
        raise UserError(
            f"{spec.source}: differs from the run in {folder.path} in {', '.join(changed)}; resuming would not "
            "continue the same experiment. Pass --allow-changes (allow_changes=True) to resume anyway, or start a "
            "new run."
        )
    if checkpoint is None:  # said even without a progress display: a restart is never silent
        log.warning("%s: no checkpoint yet and nothing trained; starting the run from the beginning.", folder.path)
    return checkpoint


@contextlib.contextmanager
def _interrupt_handler(run: Run) -> Iterator[None]:
    """First Ctrl-C: stop at the next batch boundary (a checkpoint is written). Second: abort now."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if run.control.interrupt_requested:
            raise KeyboardInterrupt
        run.control.interrupt_requested = True
        log.warning("\nnumpyml: stopping after this batch to write a checkpoint (Ctrl-C again to abort at once)")

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _write_failure(exc: OSError, folder: RunFolder) -> UserError:
    """The error for a file that could not be written during a run (disk full, read-only, ...)."""
    last = folder.checkpoint_path("last")
    what = f"{exc.filename}: " if exc.filename else ""
    then = (f"continue with: numpyml resume {folder.path} (it goes on from {last})" if last.is_file()
            else "no checkpoint was written yet; start again with another --output")
    return UserError(f"{what}{exc.strerror or exc}. The run in {folder.path} stopped; every file already there is "
                     "complete (numpyml writes each file under a temporary name, then renames it). Free space (or "
                     f"fix the file), then {then}.")


def run(experiment: Experiment | str | os.PathLike, output: str | os.PathLike | None = None,
        data_dir: str | os.PathLike | None = None, progress: bool = True, callbacks: list[Any] | None = None,
        resume: bool = False, allow_changes: bool = False) -> RunResult:
    """Train ``experiment`` (an :class:`Experiment` or a file's path) into the run folder ``output`` (default
    ``runs/<name>-<time>``), or continue the run there (``resume``): what ``numpyml run`` does. Returns a
    :class:`RunResult`; raises UserError, RunFailed, and :class:`TrainingInterrupted` on Ctrl-C. docs/api.md."""
    if not isinstance(experiment, Experiment):
        experiment = Experiment.load(experiment)
    spec = experiment.spec
    run_callbacks = _make_callbacks(experiment, (["progress"] if progress else []) + list(DEFAULT_CALLBACKS))
    run_callbacks += list(callbacks or [])
    config_text = resolved_config(experiment)
    if resume:
        if output is None:
            raise UserError("resume needs the run folder to continue (output=RUN_DIR, --output RUN_DIR).")
        if not RunFolder(output).is_run():
            raise UserError(f"{output}: not a run folder to resume (it has no {RunFolder.CONFIG}).")
        claim = lock_existing(output)
    elif output is not None:
        claim = claim_new(output)
    else:
        claim = claim_default("runs", spec.name)
    with claim as folder:
        checkpoint = _resume_checkpoint(experiment, folder, allow_changes) if resume else None
        trainer_run = prepare(spec, experiment.manager, data_dir=str(data_dir) if data_dir else data_dir_from_env(),
                              folder=folder)
        if checkpoint is None or allow_changes:
            try:
                folder.write_config(config_text)
            except OSError as exc:
                raise UserError(f"--output {folder.path}: cannot write the run folder: "
                                f"{exc.filename or folder.path}: {exc.strerror or exc}.") from None
        register_callbacks(trainer_run, run_callbacks)
        try:
            if checkpoint is not None:
                restore(trainer_run, *checkpoint, source=str(folder.checkpoint_path("last")))
            with _interrupt_handler(trainer_run):
                summary = train(trainer_run)
        except KeyboardInterrupt as exc:
            epoch, batch = ((exc.epoch, exc.batch) if isinstance(exc, TrainingInterrupted)  # else: the last batch done
                            else (trainer_run.epoch + (trainer_run.batch > 0), trainer_run.batch))
            last = folder.checkpoint_path("last")
            raise TrainingInterrupted(epoch, batch, folder.path, last if last.exists() else None) from None
        except OSError as exc:
            raise _write_failure(exc, folder) from None
        finally:
            unregister_callbacks(trainer_run)
        architecture = trainer_run.architecture()
        try:
            folder.write_model(trainer_run.model, architecture)
            folder.write_summary(summary)
        except OSError as exc:
            raise _write_failure(exc, folder) from None
    trainer_run.model.architecture = architecture
    return RunResult(summary, folder, trainer_run.model, trainer_run)


def resume(run_dir: str | os.PathLike, data_dir: str | os.PathLike | None = None, progress: bool = True,
           callbacks: list[Any] | None = None, allow_changes: bool = False,
           overrides: Mapping[str, Any] | None = None) -> RunResult:
    """Continue the run in ``run_dir`` with its own config.toml (and ``overrides``, which need ``allow_changes``,
    as does a config.toml edited since the checkpoint): what ``numpyml resume`` does. As :func:`run` otherwise."""
    folder = RunFolder(run_dir)
    if not folder.is_run():
        raise UserError(f"{run_dir}: not a run folder (it has no {RunFolder.CONFIG}).")
    return run(Experiment.load(folder.config_path, overrides), output=run_dir, data_dir=data_dir, progress=progress,
               callbacks=callbacks, resume=True, allow_changes=allow_changes)


def load_model(path: str | os.PathLike, manager: PluginManager | None = None) -> Model:
    """The trained network in a model file (a run folder stands for its model.safetensors), ready for
    ``model.predict(x)``; ``model.architecture`` is the file's description. Never runs code; raises UserError."""
    from .serialization import load_model as read_model

    path = Path(path)
    if path.is_dir():
        path = RunFolder(path).model_path
    model, architecture = read_model(path, manager or get_plugin_manager())
    model.architecture = architecture
    model.source = str(path)
    return model


def evaluate(model: Model | str | os.PathLike, dataset: str | None = None, split: str = "test",
             data_dir: str | os.PathLike | None = None, batch_size: int = 1000,
             manager: PluginManager | None = None) -> dict[str, Any]:
    """Loss and accuracy of ``model`` (a Model or a model file) on ``split`` of ``dataset`` (default: the one it
    was trained on): ``{"dataset", "split", "samples", "loss", "accuracy"}``; what ``numpyml eval`` does."""
    manager = manager or get_plugin_manager()
    if not isinstance(model, Model):
        model = load_model(model, manager)
    architecture = model.architecture or {}
    name = dataset or architecture.get("dataset")
    if not name:
        raise UserError(f"{model.source}: the model does not say which dataset it was trained on; pass dataset= "
                        "(--dataset).")
    data = manager.create("dataset", name)
    if tuple(data.input_shape) != tuple(model.input_shape):
        raise UserError(f"dataset={name!r}: its samples have shape {tuple(data.input_shape)} but the model "
                        f"takes {tuple(model.input_shape)}.")
    splits = data.load(str(data_dir) if data_dir else data_dir_from_env())
    if split not in splits:
        raise UserError(f"split={split!r}: dataset '{name}' has the splits {', '.join(sorted(splits))}.")
    if len(splits[split]) == 0:
        raise UserError(f"split={split!r}: dataset '{name}' returned an empty '{split}' split (0 samples): "
                        "nothing to evaluate. Check its data files.")
    cost_table = dict(architecture.get("cost") or {"type": "cross_entropy"})
    cost = manager.create("cost", cost_table.pop("type"), **cost_table)
    result = evaluate_split(model, cost, splits[split], batch_size)
    return {"dataset": name, "split": split, "samples": len(splits[split]), **result}
