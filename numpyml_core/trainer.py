"""The training loop: :func:`prepare` builds a :class:`Run` from a validated experiment; :func:`train` runs the
epoch/batch loop, calling the :mod:`~numpyml_core.hookspecs` hooks on the run's callbacks."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pluggy

from .config import ExperimentSpec
from .errors import ConfigError, UserError
from .model import Model
from .plugins import PluginManager, get_plugin_manager, run_hook_manager


class TrainingDiverged(UserError):
    """The loss or the parameters became non-finite."""


class TrainingInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C, at a batch boundary when it could: ``epoch`` and ``batch`` (0: at the end of
    ``epoch``) say where. :func:`numpyml_core.run` sets ``run_dir`` (to resume) and ``checkpoint`` (the
    checkpoint written, or ``None``)."""

    def __init__(self, epoch: int, batch: int, run_dir: Path | None = None, checkpoint: Path | None = None):
        where = f"in epoch {epoch} after batch {batch}" if batch else f"after epoch {epoch}"
        saved = "no checkpoint was written" if checkpoint is None else f"the last checkpoint is in {checkpoint.parent}"
        resume = "" if run_dir is None else f"; {saved}. Continue with: numpyml resume {run_dir}"
        super().__init__(f"interrupted {where}{resume}")
        self.epoch = epoch
        self.batch = batch
        self.run_dir = run_dir
        self.checkpoint = checkpoint


@dataclass
class Control:
    """Flags that steer the loop: callbacks set ``should_stop`` (and ``stop_reason``) to end training after
    the epoch; Ctrl-C sets ``interrupt_requested`` and the trainer stops at the next batch boundary."""

    should_stop: bool = False
    stop_reason: str = ""
    interrupt_requested: bool = False


@dataclass
class Update:
    """One optimizer step a strategy hands to :meth:`Run.apply_update`: ``grads``, staleness ``tau``, ``params_read``
    (what they were computed on), ``state`` (docs/plugins.md, "Writing an update strategy", says each field)."""

    grads: Mapping[str, np.ndarray]
    tau: int = 1
    params_read: Mapping[str, np.ndarray] | None = None
    state: Sequence[tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray], float]] = ()


@dataclass
class Run:
    """Everything one training run holds; passed to every hook as ``run``."""

    spec: ExperimentSpec
    manager: PluginManager
    dataset: Any
    model: Model
    cost: Any
    optimizer: Any
    strategy: Any
    schedule: Any
    transforms: list[Any]
    splits: dict[str, Any]
    folder: Any  # the numpyml_core.RunFolder the run writes its files in, or None
    init_rng: np.random.Generator
    shuffle_rng: np.random.Generator
    augment_rng: np.random.Generator
    base_learning_rate: float
    control: Control = field(default_factory=Control)
    epoch: int = 0  # last completed epoch
    batch: int = 0  # batches completed in the epoch in progress (0 at an epoch boundary)
    step: int = 0  # optimizer steps taken
    epoch_losses: list[float] = field(default_factory=list)  # losses of the epoch in progress
    epoch_shuffle_state: dict | None = None  # shuffle generator state at the start of this epoch
    at_boundary: bool = True  # False while a batch is being trained
    batch_indices: np.ndarray | None = None  # of the batch being trained, into splits["train"]
    history: list[dict[str, Any]] = field(default_factory=list)
    callbacks: list[Any] = field(default_factory=list)
    hook_manager: pluggy.PluginManager = field(default_factory=run_hook_manager)  # this run's callbacks only
    started: float = field(default_factory=time.time)

    @property
    def output_dir(self) -> Path | None:
        """The run folder's path, or ``None`` when the run writes no files."""
        return None if self.folder is None else self.folder.path

    @property
    def hooks(self) -> Any:
        """The training hooks, called on this run's callbacks only (``run.hooks.numpyml_before_update(...)``)."""
        return self.hook_manager.hook

    def apply_update(self, update: Update, compensation: Any = None) -> None:
        """The one way training changes the model: merge the layer state, compensate the staleness (a ``staleness``
        component), call ``numpyml_before_update``, step the optimizer (each step: docs/plugins.md)."""
        for name, value in self.model.state().items() if update.state else ():
            change = sum(w * (after[name].astype(np.float64) - before[name]) for before, after, w in update.state)
            value[...] = (value + change).astype(value.dtype, copy=False)
        params, grads, optimizer = self.model.params(), update.grads, self.optimizer
        factor = 1.0 if compensation is None else compensation.learning_rate_factor(update.tau)
        if compensation is not None:
            compensation.compensate(grads, params, update.params_read or params, update.tau)
        self.hooks.numpyml_before_update(run=self, params=params, grads=grads)
        base = optimizer.learning_rate  # as the hook left it
        optimizer.learning_rate = base * factor
        try:
            optimizer.step(params, grads)
        finally:
            optimizer.learning_rate = base

    def architecture(self) -> dict[str, Any]:
        """What the run's model file holds besides the weights (see :mod:`numpyml_core.serialization`)."""
        return {
            "input_shape": list(self.model.input_shape),
            "layers": self.model.configs,
            "cost": self.spec.cost.as_table(),
            "num_classes": getattr(self.dataset, "num_classes", None),
            "class_names": list(getattr(self.dataset, "class_names", []) or []),
            "dataset": self.spec.dataset.type,
        }

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.splits["train"]) / self.spec.training.batch_size)

    @property
    def eval_splits(self) -> list[str]:
        names = self.spec.training.eval_splits
        if names is None:
            names = [name for name in ("validation", "test") if name in self.splits]
            names += sorted(n for n in self.splits if n not in ("train", "validation", "test"))
        if self.spec.training.eval_train and "train" not in names:
            names = ["train", *names]
        return names


def build_model(spec: ExperimentSpec, manager: PluginManager, input_shape: tuple[int, ...],
                rng: np.random.Generator) -> Model:
    """Create and build the experiment's layers, then push a tiny batch through them
    (:meth:`Model.check_forward_shapes`); shape problems become config errors."""
    layers = [layer.create(manager) for layer in spec.layers]
    model = Model(layers, [layer.as_table() for layer in spec.layers])
    try:
        model.build(tuple(input_shape), rng)
        model.check_forward_shapes()
    except ValueError as exc:
        raise ConfigError(f"{spec.source}: [[model.layers]]: {exc}.") from None
    return model


class GradientWorker:
    """A replica of a run's network for a strategy's workers (a process, a Ray actor: the transport is the
    strategy's), rebuilt from the experiment ``spec`` through the plugin manager; ``seed`` seeds its dropout.
    After :meth:`gradients`: the gradients in ``model.grads()``, the layer state after it in ``model.state()``."""

    def __init__(self, spec: ExperimentSpec, input_shape: tuple[int, ...], seed: Any):
        manager = get_plugin_manager()
        self.model = build_model(spec, manager, tuple(input_shape), np.random.default_rng(seed))
        self.cost = spec.cost.create(manager)

    def gradients(self, x: np.ndarray, y: np.ndarray, params: Mapping[str, np.ndarray] | None = None,
                  state: Mapping[str, np.ndarray] | None = None, scale: float = 1.0) -> float:
        """Copy ``params`` and ``state`` (by qualified name; an array the model computes on already is not
        copied) into the replica; return the mean loss of ``(x, y)``, leaving ``scale`` times its gradient."""
        for given, own in ((params, self.model.params()), (state, self.model.state())):
            for name, value in (given or {}).items():
                if own[name] is not value:
                    np.copyto(own[name], value)
        return self.model.loss_and_gradients(x, y, self.cost, scale=scale)


def random_generators(seed: int) -> tuple[np.random.Generator, np.random.Generator, np.random.Generator]:
    """Independent generators for initialization (and dropout), shuffling and augmentation."""
    init, shuffle, augment = np.random.SeedSequence(seed).spawn(3)
    return np.random.default_rng(init), np.random.default_rng(shuffle), np.random.default_rng(augment)


def _build(spec: ExperimentSpec, manager: PluginManager) -> tuple[Any, tuple[np.random.Generator, ...], Model]:
    """The dataset, the :func:`random_generators` and the network, checked against the dataset's classes."""
    dataset = spec.dataset.create(manager)
    rngs = random_generators(spec.seed)
    model = build_model(spec, manager, dataset.input_shape, rngs[0])
    classes = getattr(dataset, "num_classes", None)
    if classes is not None and model.output_shape != (classes,):
        raise ConfigError(f"{spec.source}: [[model.layers]]: the network outputs shape {model.output_shape} per "
                          f"sample but dataset '{spec.dataset.type}' has {classes} classes; the last layer must "
                          f"output ({classes},) (for example units = {classes}).")
    return dataset, rngs, model


def validate_experiment(spec: ExperimentSpec, manager: PluginManager) -> Model:
    """Validate everything that can be checked without data: components, shapes, output size, and
    ``validation`` against the training size the dataset declares (its optional ``split_sizes``)."""
    dataset, _, model = _build(spec, manager)
    sizes = getattr(dataset, "split_sizes", None)
    train = sizes.get("train") if isinstance(sizes, dict) else None
    if spec.validation and isinstance(train, int) and not isinstance(train, bool) and spec.validation >= train:
        raise ConfigError(f"{spec.source}: [dataset] validation = {spec.validation} leaves no training data: "
                          f"dataset '{spec.dataset.type}' has at most {train:,} training samples. Hold out fewer "
                          f"(for example validation = {train // 6}).")
    for component in [spec.cost, spec.optimizer, spec.strategy, spec.schedule, *spec.transforms]:
        if component is not None:
            component.create(manager)
    return model


def prepare(spec: ExperimentSpec, manager: PluginManager, data_dir: str | None = None, folder: Any = None) -> Run:
    """Build the run's components and network, load the data and carve out the validation split.
    ``folder``: the :class:`numpyml_core.RunFolder` the run writes (``None``: no files)."""
    dataset, (init_rng, shuffle_rng, augment_rng), model = _build(spec, manager)
    cost, optimizer, strategy = (part.create(manager) for part in (spec.cost, spec.optimizer, spec.strategy))
    schedule = spec.schedule.create(manager) if spec.schedule is not None else None
    transforms = [t.create(manager) for t in spec.transforms]

    splits = dict(dataset.load(data_dir))
    if "train" not in splits:
        raise UserError(f"dataset '{spec.dataset.type}' returned no 'train' split (it has {sorted(splits)}).")
    for name, split in splits.items():
        if len(split) == 0:
            raise UserError(f"dataset '{spec.dataset.type}' returned an empty '{name}' split (0 samples): nothing "
                            f"to {'train on' if name == 'train' else 'evaluate'}. Check its data files.")
    if spec.validation:
        train = splits["train"]
        if spec.validation >= len(train):
            raise ConfigError(f"{spec.source}: [dataset] validation = {spec.validation} leaves no training data: "
                              f"the training split has {len(train)} samples.")
        if not hasattr(train, "subset"):
            raise ConfigError(f"{spec.source}: [dataset] validation: dataset '{spec.dataset.type}' cannot be split "
                              "(its train split has no subset method).")
        cut = len(train) - spec.validation
        splits["validation"] = train.subset(cut, len(train))
        splits["train"] = train.subset(0, cut)
    for name in spec.training.eval_splits or []:
        if name not in splits:
            raise ConfigError(f"{spec.source}: [training] eval_splits: no split '{name}'; this run has "
                              f"{sorted(splits)}.")
    return Run(
        spec=spec, manager=manager, dataset=dataset, model=model, cost=cost, optimizer=optimizer,
        strategy=strategy, schedule=schedule, transforms=transforms, splits=splits, folder=folder,
        init_rng=init_rng, shuffle_rng=shuffle_rng, augment_rng=augment_rng,
        base_learning_rate=float(getattr(optimizer, "learning_rate", 0.0)),
    )


def evaluate(model: Model, cost: Any, split: Any, batch_size: int = 1000, flip: bool = False) -> dict[str, float]:
    """Mean loss and accuracy of ``model`` on a whole split, in evaluation mode. ``flip``: average the outputs
    for each NHWC image and its horizontal mirror (the loss is then the cost of the averaged outputs)."""
    n = len(split)
    total_loss, correct = 0.0, 0
    for start in range(0, n, batch_size):
        indices = np.arange(start, min(start + batch_size, n))
        x, y = split.batch(indices)
        if flip and x.ndim == 4:
            outputs = (model.predict(x) + model.predict(x[:, :, ::-1])) * np.float32(0.5)
            loss = float(cost.loss(outputs, y))
        else:
            loss, outputs = model.loss(x, y, cost)
        total_loss += loss * len(indices)
        if outputs.ndim == 2 and y.ndim == 1:
            correct += int(np.count_nonzero(outputs.argmax(axis=1) == y))
    return {"loss": total_loss / max(n, 1), "accuracy": correct / max(n, 1)}


def _diverged(run: Run, what: str,
              advice: str = ", gradient clipping (clip_norm), or check the input scaling.") -> TrainingDiverged:
    return TrainingDiverged(f"training diverged: {what}. The usual cause is a learning rate that is too high (it is "
                            f"{run.optimizer.learning_rate:g} in {run.spec.source} [optimizer]); try a smaller "
                            f"one{advice}")


def raise_if_diverged(run: Run, where: str, note: str = "") -> None:
    """Raise :class:`TrainingDiverged` if a parameter is not finite; ``where`` (when) and ``note`` go in the message."""
    for name, value in run.model.params().items():
        if not np.all(np.isfinite(value)):
            raise _diverged(run, f"parameter '{name}' is no longer finite {where}",
                            f" or gradient clipping (clip_norm).{note}")


def register_callbacks(run: Run, callbacks: list[Any]) -> None:
    """Add ``callbacks`` to this run's own hook manager (``run.hook_manager``): only this run calls them."""
    for callback in callbacks:
        run.hook_manager.register(callback)
        run.callbacks.append(callback)


def unregister_callbacks(run: Run) -> None:
    """Remove the run's callbacks from its hook manager (the run can then be trained again without them)."""
    for callback in run.callbacks:
        if run.hook_manager.is_registered(callback):
            run.hook_manager.unregister(callback)
    run.callbacks.clear()


def train(run: Run) -> dict[str, Any]:
    """Run the epoch/batch loop; return the summary (final figures)."""
    spec = run.spec
    hooks = run.hooks
    train_split = run.splits["train"]
    n = len(train_split)
    batch_size = spec.training.batch_size
    batches = run.batches_per_epoch
    bind = getattr(run.schedule, "bind", None)
    if bind is not None:
        bind(total_steps=spec.training.epochs * batches, steps_per_epoch=batches)
    try:
        run.strategy.setup(run)
        hooks.numpyml_on_run_start(run=run)
        # a run resumed after a callback had ended it trains no more epochs
        first_epoch = spec.training.epochs + 1 if run.control.should_stop else run.epoch + 1
        for epoch in range(first_epoch, spec.training.epochs + 1):
            started = time.perf_counter()
            if run.batch > 0:  # continue mid-epoch: replay this epoch's shuffle from its saved start state
                run.shuffle_rng.bit_generator.state = run.epoch_shuffle_state
            else:
                run.epoch_losses = []
                run.epoch_shuffle_state = run.shuffle_rng.bit_generator.state
            hooks.numpyml_on_epoch_start(run=run, epoch=epoch)
            order = run.shuffle_rng.permutation(n) if spec.training.shuffle else np.arange(n)
            losses = run.epoch_losses
            for batch in range(run.batch, batches):
                run.at_boundary = False
                indices = order[batch * batch_size:(batch + 1) * batch_size]
                run.batch_indices = indices
                hooks.numpyml_on_batch_start(run=run, epoch=epoch, batch=batch)
                x, y = train_split.batch(indices)
                for transform in run.transforms:
                    x = transform(x, run.augment_rng)
                if run.schedule is not None:
                    run.optimizer.learning_rate = float(run.schedule(run.step, epoch - 1, run.base_learning_rate))
                loss = run.strategy.train_batch(run, x, y)
                if loss is not None:
                    if not math.isfinite(loss):
                        raise _diverged(run, f"the loss became {loss} at epoch {epoch}, batch {batch + 1}")
                    losses.append(loss)
                run.step += 1
                run.batch = batch + 1
                run.at_boundary = True
                hooks.numpyml_on_batch_end(run=run, epoch=epoch, batch=batch, loss=loss)
                if run.control.interrupt_requested:
                    raise TrainingInterrupted(epoch, batch + 1)
            end_epoch = getattr(run.strategy, "end_epoch", None)
            if end_epoch is not None:
                for loss in end_epoch(run):
                    if not math.isfinite(loss):
                        raise _diverged(run, f"the loss became {loss} at epoch {epoch}, batch {batches}")
                    losses.append(loss)
            raise_if_diverged(run, f"at the end of epoch {epoch}")
            metrics: dict[str, Any] = {"epoch": epoch, "train_loss": float(np.mean(losses)) if losses else math.nan}
            for name in run.eval_splits:
                result = evaluate(run.model, run.cost, run.splits[name], spec.training.eval_batch_size,
                                  flip=spec.training.eval_flip)
                metrics.update({f"{name}_{key}": value for key, value in result.items()})
                hooks.numpyml_on_evaluate_end(run=run, epoch=epoch, split=name, metrics=result)
            if run.schedule is not None:
                metrics["learning_rate"] = run.optimizer.learning_rate
            metrics["seconds"] = time.perf_counter() - started
            run.history.append(metrics)
            run.epoch = epoch
            run.batch = 0
            run.epoch_losses = []
            hooks.numpyml_on_epoch_end(run=run, epoch=epoch, metrics=metrics)
            if run.control.interrupt_requested:
                raise TrainingInterrupted(epoch, 0)
            if run.control.should_stop:
                break
        summary = make_summary(run)
        hooks.numpyml_on_run_end(run=run, summary=summary)
        return summary
    except BaseException as error:
        hooks.numpyml_on_error(run=run, error=error)
        raise
    finally:
        run.strategy.teardown(run)


def make_summary(run: Run) -> dict[str, Any]:
    """The final figures: the last epoch's metrics, totals, the best validation accuracy, the stop reason."""
    last = run.history[-1] if run.history else {}
    summary: dict[str, Any] = {
        "name": run.spec.name, "epochs": run.epoch, "steps": run.step, "parameters": run.model.count_params(),
        "seconds": round(sum(row.get("seconds", 0.0) for row in run.history), 3),
        **{key: value for key, value in last.items() if key not in ("epoch", "seconds")},
    }
    if "validation_accuracy" in last:
        best = max(run.history, key=lambda row: row["validation_accuracy"])
        summary["best_validation_accuracy"] = best["validation_accuracy"]
        summary["best_epoch"] = best["epoch"]
    if run.control.stop_reason:
        summary["stop_reason"] = run.control.stop_reason
    return summary
