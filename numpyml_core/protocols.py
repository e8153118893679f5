"""The contracts every component kind fulfils (summarised in docs/plugins.md, "Kinds and their protocols").

Components provide the members written here; they do not inherit from these classes. Arrays are NumPy, float32
unless stated, batch axis first (images NHWC); ``build`` shapes exclude it. The protocols after :class:`Schedule`
declare optional members, used when a component has them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from .trainer import Run

__all__ = ["KINDS", "Layer", "Activation", "Cost", "Initializer", "Optimizer", "Strategy", "Dataset", "Split",
           "Callback", "Transform", "Schedule", "StatefulLayer", "FirstTrainableLayer", "RecyclingLayer", "FusedCost",
           "EpochEndStrategy", "BoundSchedule"]

#: Every component kind the core knows how to use; ``register`` accepts any other kind string too.
KINDS = ("layer", "activation", "cost", "initializer", "optimizer", "strategy", "dataset", "callback", "transform",
         "schedule")


@runtime_checkable
class Layer(Protocol):
    """One step of a network: constructed with keyword arguments, built once, then forward/backward pairs.

    * ``params``: name -> array (``{}`` when none), updated in place by the optimizer: never rebind them after
      ``build``, and read ``params[name]``/``grads[name]`` at every call (others may swap the arrays).
    * ``grads``: exactly the keys and shapes of ``params``.
    * ``build(input_shape, rng) -> output_shape``: allocates float32 parameters, drawing only from ``rng``.
    * ``forward(x, training) -> y``: ``x`` is ``(N, *input_shape)``; caches what ``backward`` needs.
    * ``backward(dy) -> dx``: overwrites ``grads`` with the gradient of the batch's mean loss and returns the
      input's gradient; ``dy`` is that of the last ``forward``'s output. At most once per ``forward``.

    Optional members: :class:`StatefulLayer`, :class:`FirstTrainableLayer`, :class:`RecyclingLayer`.
    """

    params: dict[str, np.ndarray]
    grads: dict[str, np.ndarray]

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]: ...
    def forward(self, x: np.ndarray, training: bool) -> np.ndarray: ...
    def backward(self, dy: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Activation(Layer, Protocol):
    """A nonlinearity: a :class:`Layer` with no parameters, also usable as a layer's ``activation``.

    ``fusable_as`` is ``None``, or (``"softmax"``) the name a :class:`FusedCost` fuses with: the cost then gets
    this activation's input (the logits) in training and computes loss and gradient together.
    """

    fusable_as: str | None


@runtime_checkable
class Cost(Protocol):
    """A loss between the network's output and the targets (integer labels ``(N,)`` or arrays like ``outputs``).

    * ``loss(outputs, targets) -> float``: the mean loss over the batch.
    * ``gradient(outputs, targets) -> d_outputs``: the gradient of that mean (it already carries the ``1/N``).

    Optional members: :class:`FusedCost`.
    """

    def loss(self, outputs: np.ndarray, targets: np.ndarray) -> float: ...
    def gradient(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class Initializer(Protocol):
    """``__call__(shape, rng, dtype) -> array``: a new parameter array drawn from ``rng``. Fan-in and fan-out
    follow Keras: ``in``/``out`` for a dense weight ``(in, out)``, ``kh*kw*in``/``kh*kw*out`` for a convolution's.
    """

    def __call__(self, shape: tuple[int, ...], rng: np.random.Generator, dtype: Any = np.float32) -> np.ndarray: ...


@runtime_checkable
class Optimizer(Protocol):
    """A pure update rule.

    * ``learning_rate``: a settable float (schedules change it between steps).
    * ``step(params, grads)``: updates the ``params`` arrays in place; both are keyed alike (``"0.weight"``).
    * ``state_dict()``/``load_state_dict(state)``: everything needed to continue exactly, as arrays.
    """

    learning_rate: float

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None: ...
    def state_dict(self) -> dict[str, np.ndarray]: ...
    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None: ...


@runtime_checkable
class Strategy(Protocol):
    """How a mini-batch becomes a parameter update (serial, multi-core, distributed); see docs/parallel.md.

    * ``setup(run)``: once at run start, after the model is built: start workers here.
    * ``train_batch(run, x, y) -> loss``: computes the batch's gradient, hands it to ``run.apply_update(Update(...))``
      and returns the mean loss (asynchronous: an earlier batch's, or ``None``).
    * ``teardown(run)``: once at the end, also after an error: releases every worker and shared resource.

    A failure outside the experiment (a dead worker) raises :class:`numpyml_core.RunFailed` naming the worker
    and the cause. Optional members: :class:`EpochEndStrategy`.
    """

    def setup(self, run: Run) -> None: ...
    def train_batch(self, run: Run, x: np.ndarray, y: np.ndarray) -> float | None: ...
    def teardown(self, run: Run) -> None: ...


@runtime_checkable
class Split(Protocol):
    """One split of a dataset: ``len()`` samples, and ``batch(indices) -> (x, y)``, ``x`` float32 scaled for the
    network (images to ``[0, 1]``), ``y`` int64 labels."""

    def __len__(self) -> int: ...
    def batch(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


@runtime_checkable
class Dataset(Protocol):
    """A labelled data set: per-sample ``input_shape`` (``(28, 28, 1)``), ``num_classes``, ``class_names``.

    * ``load(data_dir) -> {"train": Split, "test": Split}`` (``"test"`` where there is one; no split empty):
      reads the user's ``data_dir`` (or ``None``); missing or corrupt files raise :class:`numpyml_core.UserError`.
    * ``split_sizes`` (optional, ``{"train": 60000, ...}``, known without loading): lets ``numpyml validate``
      refuse a ``[dataset] validation = N`` that would leave no training data.
    """

    input_shape: tuple[int, ...]
    num_classes: int
    class_names: list[str]

    def load(self, data_dir: str | None) -> dict[str, Split]: ...


@runtime_checkable
class Callback(Protocol):
    """An object with ``@hookimpl`` methods named after training hooks (:mod:`numpyml_core.hookspecs`), called
    only by the runs that select it. Callbacks with state implement ``state_dict()``/``load_state_dict()``."""


@runtime_checkable
class Transform(Protocol):
    """Data augmentation: ``__call__(x, rng) -> x`` on a float32 training batch, with the run's seeded ``rng``."""

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray: ...


@runtime_checkable
class Schedule(Protocol):
    """``__call__(step, epoch, base_learning_rate) -> learning_rate`` (``step``, ``epoch`` from 0), set before
    every step; a pure function of its arguments (resuming needs no state). Optional: :class:`BoundSchedule`."""

    def __call__(self, step: int, epoch: int, base_learning_rate: float) -> float: ...


@runtime_checkable
class StatefulLayer(Layer, Protocol):
    """``state``: name -> non-trainable arrays saved with the model (running statistics). Absent means none."""

    state: dict[str, np.ndarray]


@runtime_checkable
class FirstTrainableLayer(Layer, Protocol):
    """``input_gradient`` (default ``True``): the model sets it to ``False`` on the first layer with parameters,
    whose ``backward`` may then skip the input's gradient (and return ``None``) but still fills ``grads``."""

    input_gradient: bool


@runtime_checkable
class RecyclingLayer(Layer, Protocol):
    """``recycle_outputs`` (default ``False``): the model sets it to ``True`` on its layers, whose outputs it hands
    straight on. Then what ``forward(x, training=True)`` and ``backward`` return may be a buffer the layer reuses,
    valid until its next training ``forward`` (or ``backward``): no fresh multi-MB array, so no page faults, per
    step. Evaluation outputs, and every output while it is ``False``, are new arrays."""

    recycle_outputs: bool


@runtime_checkable
class FusedCost(Cost, Protocol):
    """A cost computing loss and gradient from the logits when the output activation's ``fusable_as`` equals its
    ``fused_activation``: ``loss_from_logits`` and ``gradient_from_logits`` (like ``loss``, ``gradient``), and
    ``loss_and_gradient_from_logits -> (loss, gradient)`` (optional, used when present)."""

    fused_activation: str | None

    def loss_from_logits(self, logits: np.ndarray, targets: np.ndarray) -> float: ...
    def gradient_from_logits(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray: ...


@runtime_checkable
class EpochEndStrategy(Strategy, Protocol):
    """``end_epoch(run) -> losses``: after the epoch's last batch, before evaluation, applies every gradient in
    flight and returns the losses of the batches it completed."""

    def end_epoch(self, run: Run) -> list[float]: ...


@runtime_checkable
class BoundSchedule(Schedule, Protocol):
    """``bind(total_steps, steps_per_epoch)``: called once before training, for schedules that need the length
    of the run (cosine, one-cycle)."""

    def bind(self, total_steps: int, steps_per_epoch: int) -> None: ...
