"""The model container: an ordered list of layers, their parameters and the fused output head."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np


class Model:
    """A sequential network: ``layers`` (components) and ``configs``, their ``{"type": ..., **params}`` tables;
    parameters are named ``"<layer index>.<param name>"``. A last activation with ``fusable_as`` (softmax), as a
    layer or a layer's ``activation``, is detached as the head: a cost whose ``fused_activation`` matches works on
    the logits (stable log-sum-exp, gradient ``p - y``), any other cost goes through it."""

    def __init__(self, layers: list[Any], configs: list[dict[str, Any]] | None = None):
        self.layers = list(layers)
        self.configs = configs if configs is not None else [{} for _ in layers]
        self.head: Any = None
        self._head_from_layer = False
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.layer_shapes: list[tuple[int, ...]] = []  # per-sample output shape each build returned
        #: what a model file holds besides the weights (set by run and load_model); ``source``: where from
        self.architecture: dict[str, Any] | None = None
        self.source = "the model"

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator,
              after_layer: Callable[[int, Any], None] | None = None) -> tuple[int, ...]:
        """Build every layer in order; return the per-sample output shape. ``ValueError`` names a layer
        that rejects its input shape; ``after_layer(index, layer)`` is called after each layer's build."""
        self.input_shape = tuple(input_shape)
        shape = self.input_shape
        self.layer_shapes = []
        for index, layer in enumerate(self.layers):
            try:
                shape = tuple(layer.build(shape, rng))
                self.layer_shapes.append(shape)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{self._name(index, layer)} cannot take input of shape {shape}: {exc}") from exc
            except MemoryError as exc:
                raise ValueError(f"{self._name(index, layer)} needs more memory for its parameters than this "
                                 f"machine has ({exc}); make it smaller") from None
            if after_layer is not None:
                after_layer(index, layer)
        self.output_shape = shape
        self._detach_head()
        # backward stops at the first layer with parameters, which may skip its input gradient
        body = self.body
        self._backward_from = next((i for i, layer in enumerate(body) if getattr(layer, "params", None)), len(body))
        settings = [(layer, "recycle_outputs", True) for layer in self.layers]  # outputs are handed straight on
        if self._backward_from < len(body):
            settings.append((body[self._backward_from], "input_gradient", False))
        for layer, name, value in settings:
            try:
                setattr(layer, name, value)
            except AttributeError:  # a layer with __slots__: it does without
                pass
        return shape

    def check_forward_shapes(self, samples: int = 2) -> None:
        """Push ``samples`` zeros through the built network in evaluation mode; raise ``ValueError`` naming
        the first layer whose ``forward`` fails or disagrees with the shape its ``build`` returned."""
        x = np.zeros((samples, *self.input_shape), dtype=np.float32)
        steps = [(index, layer, self.layer_shapes[index], "") for index, layer in enumerate(self.layers)]
        if self.head is not None and not self._head_from_layer:  # the activation detached from the last layer
            steps.append((len(self.layers) - 1, self.head, self.output_shape, " (its activation)"))
        for index, layer, shape, suffix in steps:
            what = self._name(index, layer) + suffix
            try:
                out = layer.forward(x, False)
            except Exception as exc:  # noqa: BLE001 - any failure of a plugin's forward is reported as its own
                raise ValueError(f"{what} failed on a test batch of {samples} samples of zeros (input shape "
                                 f"{x.shape}): {type(exc).__name__}: {exc}") from exc
            expected = (samples, *shape)
            if not isinstance(out, np.ndarray):
                raise ValueError(f"{what}: forward returned {type(out).__name__}, not a NumPy array, for an input "
                                 f"of shape {x.shape}")
            if out.shape != expected:
                raise ValueError(f"{what}: forward returned shape {out.shape} for an input of shape {x.shape}, but "
                                 f"its build promised {expected} ({shape} per sample), which the next layer was "
                                 "built for; the layer's build and forward disagree")
            x = out

    def _name(self, index: int, layer: Any) -> str:
        return f"layer #{index + 1} ({self.configs[index].get('type', type(layer).__name__)})"

    def _detach_head(self) -> None:
        last = self.layers[-1]
        if getattr(last, "fusable_as", None):
            self.head = last
            self._head_from_layer = True
        elif getattr(getattr(last, "activation", None), "fusable_as", None):
            self.head = last.activation
            last.activation = None
            self._head_from_layer = False

    @property
    def body(self) -> list[Any]:
        """The layers that produce the logits (every layer but a detached head layer)."""
        return self.layers[:-1] if self._head_from_layer else self.layers

    def logits(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self.body:
            x = layer.forward(x, training)
        return x

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Outputs in evaluation mode (probabilities when the head is softmax)."""
        out = self.logits(x, training=False)
        return self.head.forward(out, False) if self.head is not None else out

    def _fused(self, cost: Any) -> bool:
        fused = getattr(cost, "fused_activation", None)
        return self.head is not None and fused is not None and fused == getattr(self.head, "fusable_as", None)

    def loss(self, x: np.ndarray, y: np.ndarray, cost: Any) -> tuple[float, np.ndarray]:
        """Mean loss in evaluation mode and the outputs (probabilities) for accuracy."""
        logits = self.logits(x, training=False)
        if self._fused(cost):
            return float(cost.loss_from_logits(logits, y)), logits  # argmax of logits == argmax of softmax
        out = self.head.forward(logits, False) if self.head is not None else logits
        return float(cost.loss(out, y)), out

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray, cost: Any, scale: float = 1.0) -> float:
        """Forward in training mode and backward, leaving ``scale`` times the gradients in the layers'
        ``grads`` (scaled once, at the output); return the batch's mean loss."""
        logits = self.logits(x, training=True)
        if self._fused(cost):
            both = getattr(cost, "loss_and_gradient_from_logits", None)
            if both is not None:
                loss, grad = both(logits, y)
            else:
                loss = cost.loss_from_logits(logits, y)
                grad = cost.gradient_from_logits(logits, y)
        elif self.head is not None:
            out = self.head.forward(logits, True)
            loss = cost.loss(out, y)
            grad = self.head.backward(cost.gradient(out, y))
        else:
            loss = cost.loss(logits, y)
            grad = cost.gradient(logits, y)
        if scale != 1.0:
            grad = grad * np.asarray(scale, dtype=grad.dtype)
        for layer in reversed(self.body[self._backward_from:]):
            grad = layer.backward(grad)
        return float(loss)

    def named_layers(self) -> Iterator[tuple[str, Any]]:
        for index, layer in enumerate(self.layers):
            yield str(index), layer

    def params(self) -> dict[str, np.ndarray]:
        """Every trainable array, by qualified name (the arrays themselves, not copies)."""
        return {f"{i}.{k}": v for i, layer in self.named_layers() for k, v in getattr(layer, "params", {}).items()}

    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in self.named_layers() for k, v in getattr(layer, "grads", {}).items()}

    def state(self) -> dict[str, np.ndarray]:
        """Non-trainable arrays saved with the model (running statistics)."""
        return {f"{i}.{k}": v for i, layer in self.named_layers() for k, v in (getattr(layer, "state", None) or {}).items()}

    def tensors(self) -> dict[str, np.ndarray]:
        """Everything saved in a model file: parameters and state."""
        return {**self.params(), **self.state()}

    def load_tensors(self, tensors: dict[str, np.ndarray]) -> None:
        """Copy arrays into the built model (in place). Raises ``ValueError`` on any mismatch of
        names, shapes or dtypes (an array of another dtype is refused, never converted silently)."""
        own = self.tensors()
        missing = sorted(set(own) - set(tensors))
        extra = sorted(set(tensors) - set(own))
        if missing or extra:
            raise ValueError(f"the weights do not fit the architecture: missing {missing or 'none'}, "
                             f"unexpected {extra or 'none'}")
        for name, target in own.items():
            source = tensors[name]
            if source.shape != target.shape:
                raise ValueError(f"'{name}' has shape {source.shape}, the architecture needs {target.shape}")
            if source.dtype != target.dtype:
                raise ValueError(f"'{name}' is stored as {source.dtype}, the network needs {target.dtype} "
                                 "(an array of another type is refused, not converted)")
            target[...] = source

    def count_params(self) -> int:
        return int(sum(v.size for v in self.params().values()))
