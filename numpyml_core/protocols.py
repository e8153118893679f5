"""The contracts every component kind fulfils.

These are :class:`typing.Protocol` classes: a component does not inherit from them, it only has
to provide the attributes and methods written here. Third-party plugins depend on this module;
changes to it are announced in the changelog and signalled by the version of ``numpyml``.

Conventions for all kinds:

* arrays are NumPy arrays, ``float32`` unless a docstring says otherwise;
* the batch axis is first; images are NHWC ``(N, H, W, C)``, flat features ``(N, F)``;
* shapes given to or returned by ``build`` exclude the batch axis.
"""

from __future__ import annotations

from typing import Any, Mapping, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Layer",
    "Activation",
    "Cost",
    "Initializer",
    "Optimizer",
    "Strategy",
    "Dataset",
    "Split",
    "Callback",
    "Transform",
    "Schedule",
    "KINDS",
]

#: Every component kind known to the core. New kinds need no new hook: ``register`` accepts any
#: kind string, but these are the ones the core itself knows how to use.
KINDS = (
    "layer",
    "activation",
    "cost",
    "initializer",
    "optimizer",
    "strategy",
    "dataset",
    "callback",
    "transform",
    "schedule",
)


@runtime_checkable
class Layer(Protocol):
    """One step of a network.

    Lifecycle: construct with keyword arguments (the config schema), then ``build`` once with the
    per-sample input shape, then any number of ``forward``/``backward`` pairs.

    * ``params``: name -> array, the trainable parameters (``{}`` when none). The optimizer updates
      these arrays **in place**; a layer must not rebind them after ``build``. Others may: read
      ``params[name]`` and ``grads[name]`` at every call rather than keeping references (the test
      kit's gradient check puts float64 copies there; the ``sync``/``async`` workers put arrays in
      shared memory there, and go back to copying when a layer computes with arrays of its own).
    * ``grads``: name -> array with exactly the keys and shapes of ``params``. ``backward``
      overwrites them with the gradient of the batch's mean loss (the cost already divides by the
      batch size).
    * ``state`` (optional): name -> array of non-trainable arrays that must be saved with the model
      (running statistics, for example). Absent means none.
    * ``build(input_shape, rng) -> output_shape``: allocates parameters (float32) drawing any
      randomness only from ``rng`` (a :class:`numpy.random.Generator`), and returns the per-sample
      output shape.
    * ``forward(x, training) -> y``: ``x`` has shape ``(N, *input_shape)``; caches what
      ``backward`` needs (the input, masks, ...). ``training`` is ``False`` during evaluation.
    * ``backward(dy) -> dx``: ``dy`` is the gradient of the loss with respect to the last
      ``forward``'s output; returns the gradient with respect to its input and overwrites
      ``grads``. Called at most once per ``forward``.
    * ``input_gradient`` (optional attribute, default ``True``): the model sets it to ``False`` on
      the first layer that has parameters, whose input gradient nobody needs; such a layer may
      skip computing ``dx`` (and return ``None``) but must still fill ``grads``.
    """

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]: ...

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray: ...

    def backward(self, dy: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Activation(Layer, Protocol):
    """An element-wise (or per-sample) nonlinearity; a :class:`Layer` with no parameters.

    Activations are usable on their own in ``[[model.layers]]`` and as the ``activation`` of a
    layer that accepts one (``dense``). An activation whose output is a probability distribution
    suited to fusion with a cost sets ``fusable_as`` (``"softmax"``); a cost with the same
    ``fused_activation`` then receives the activation's *input* (the logits) during training and
    computes loss and gradient together, the numerically stable way.
    """

    fusable_as: str | None


@runtime_checkable
class Cost(Protocol):
    """A loss between the network's output and the targets.

    * ``loss(outputs, targets) -> float``: the mean loss over the batch. ``targets`` are integer
      class labels ``(N,)`` or arrays shaped like ``outputs``.
    * ``gradient(outputs, targets) -> d_outputs``: gradient of that mean with respect to
      ``outputs`` (so it already carries the ``1/N``).
    * ``fused_activation`` (optional, ``None`` when absent): the ``fusable_as`` name of an output
      activation this cost can fuse with; if set, it also provides
      ``loss_from_logits(logits, targets)`` and ``gradient_from_logits(logits, targets)``, and
      optionally ``loss_and_gradient_from_logits`` returning both (used when present).
    """

    def loss(self, outputs: np.ndarray, targets: np.ndarray) -> float: ...

    def gradient(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Initializer(Protocol):
    """Fills a new parameter array.

    ``__call__(shape, rng, dtype=np.float32) -> array``. Fan-in and fan-out follow Keras: for a
    dense weight ``(in, out)`` they are ``in`` and ``out``; for a convolution weight
    ``(kh, kw, in, out)`` they are ``kh*kw*in`` and ``kh*kw*out``.
    """

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray: ...


@runtime_checkable
class Optimizer(Protocol):
    """A pure update rule.

    * ``step(params, grads)``: ``params`` and ``grads`` are flat dicts with the same keys (the
      model's qualified names such as ``"0.weight"``); updates the ``params`` arrays **in place**.
    * ``learning_rate``: a settable float (schedules change it between steps).
    * ``state_dict() -> dict[str, ndarray]`` and ``load_state_dict(state)``: everything needed to
      continue exactly (moments, step counts), as arrays, so it can be saved without pickling.
    """

    learning_rate: float

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None: ...

    def state_dict(self) -> dict[str, np.ndarray]: ...

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None: ...


@runtime_checkable
class Strategy(Protocol):
    """How a mini-batch becomes a parameter update (serial, multi-core, distributed).

    * ``setup(run)``: called once at run start, after the model is built; start workers here.
    * ``train_batch(run, x, y) -> float | None``: compute the gradient of the batch loss (for
      example with ``run.model.loss_and_gradients(x, y, run.cost)``), call the
      ``numpyml_before_update`` hook through ``run.hooks``, apply ``run.optimizer.step`` and return
      the batch's mean loss. An asynchronous strategy may return the loss of an earlier batch that
      has just completed, or ``None`` when none has.
    * ``end_epoch(run) -> list[float]`` (optional): called after the epoch's last batch, before
      evaluation; must leave no batch in flight (every dispatched gradient applied, ``run.model``
      holding the current parameters) and returns the losses of the batches it completed.
    * ``teardown(run)``: called once at the end, also after an error; must release every worker
      and shared resource.

    ``run.batch_indices`` holds the batch's indices into ``run.splits["train"]``: a distributed
    strategy whose workers already hold the data may send those instead of ``x`` and ``y`` (only
    when ``run.transforms`` is empty: augmented batches exist only in the trainer's process).
    Failures outside the experiment (a dead worker, an unreachable cluster) raise
    :class:`numpyml_core.RunFailed` with a message naming the worker or address and the cause.

    The epoch's ``train_loss`` is the mean of the returned batch losses.
    """

    def setup(self, run: Any) -> None: ...

    def train_batch(self, run: Any, x: np.ndarray, y: np.ndarray) -> float | None: ...

    def teardown(self, run: Any) -> None: ...


@runtime_checkable
class Split(Protocol):
    """One split of a dataset, indexable by sample.

    * ``__len__()``: number of samples.
    * ``batch(indices) -> (x, y)``: ``x`` float32 ``(len(indices), *input_shape)`` scaled for the
      network (images to ``[0, 1]``), ``y`` int64 labels ``(len(indices),)``. Converting one batch
      at a time keeps memory low: store images as uint8.
    """

    def __len__(self) -> int: ...

    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class Dataset(Protocol):
    """A labelled data set.

    * ``input_shape``: per-sample shape, for example ``(28, 28, 1)``.
    * ``num_classes`` and ``class_names``.
    * ``load(data_dir) -> dict[str, Split]``: reads (or downloads) the data. ``data_dir`` is the
      directory the user chose (``--data-dir``, ``NUMPYML_DATA_DIR``) or ``None``. Must return a
      ``"train"`` split and should return ``"test"`` where the data set has one. The core carves
      the ``validation`` split out of ``"train"`` itself (``[dataset] validation = N``).
      User-fixable problems (missing or corrupt files) raise :class:`numpyml_core.UserError`
      saying where it looked and how to fix it. Every split must hold at least one sample (the
      core refuses an empty split, naming the dataset and the split).
    * ``split_sizes`` (optional): ``{"train": 60000, "test": 10000}``, the most samples each split
      can hold (the official sizes), known without loading anything. ``numpyml validate`` uses the
      ``"train"`` entry to refuse ``[dataset] validation = N`` that would leave no training data;
      a dataset without it is simply not checked there (``run`` still checks after loading).
    """

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]

    def load(self, data_dir: str | None) -> dict[str, Split]: ...


@runtime_checkable
class Callback(Protocol):
    """A training hook implementation: an object with ``@hookimpl`` methods named after the hook
    specifications in :mod:`numpyml_core.hookspecs` (``numpyml_on_epoch_end`` and so on).

    The callbacks an experiment selects (``[[callbacks]]``) and the CLI's defaults are registered
    with the run's own hook manager (``run.hook_manager``): only that run calls them. Any subset of
    hooks may be implemented.
    Callbacks that keep state implement ``state_dict()``/``load_state_dict()``.
    """


@runtime_checkable
class Transform(Protocol):
    """Data augmentation applied per training batch.

    ``__call__(x, rng) -> x``: ``x`` is a float32 batch; ``rng`` is the run's seeded generator.
    """

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class Schedule(Protocol):
    """Learning rate over time.

    ``__call__(step, epoch, base_learning_rate) -> learning_rate`` where ``step`` counts optimizer
    steps from 0 and ``epoch`` counts epochs from 0; the trainer sets the optimizer's
    ``learning_rate`` from it before every step. ``base_learning_rate`` is the optimizer's
    configured ``learning_rate``.

    ``bind(total_steps, steps_per_epoch)`` (optional): called once before training, for schedules
    that need the length of the run (cosine, one-cycle). A schedule must be a pure function of
    its arguments (and what ``bind`` gave it), so resuming from a checkpoint needs no schedule state.
    """

    def __call__(self, step: int, epoch: int, base_learning_rate: float) -> float: ...

