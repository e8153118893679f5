"""Layers that compute on arrays living elsewhere (shared memory) instead of copying them.

The layer protocol asks a layer to read ``params[name]`` and ``grads[name]`` at every call, so
putting another array of the same shape and dtype into those dicts makes the layer compute on it:
a worker then reads the training process's parameters and writes its gradients in shared memory
with no copy, and ``sync``'s training process steps the shared parameters themselves.

Nothing is taken on trust. :class:`Binding` binds every parameter or none: it first puts private
copies into the dicts and checks, one parameter at a time, that changing the copy changes the
model's output (a layer that computes with references it kept at ``build`` would not notice), and
only then puts the shared arrays there. :meth:`Binding.release` puts the layers' own arrays back,
holding the bound arrays' values.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np


def _entries(model: Any) -> list[tuple[str, Any, str]]:
    """``(qualified name, layer, name)`` of every parameter of ``model``."""
    return [(f"{index}.{name}", layer, name)
            for index, layer in model.named_layers() for name in list(getattr(layer, "params", None) or {})]


def _fits(array: Any, like: Any) -> bool:
    return isinstance(array, np.ndarray) and isinstance(like, np.ndarray) and array.shape == like.shape \
        and array.dtype == like.dtype


class Binding:
    """The layers of ``model`` computing on ``params`` (qualified name -> array) and, when given,
    writing their gradients into ``grads`` (qualified name -> array).

    :meth:`bind` returns whether it bound (all parameters, or nothing); ``active`` says so later.
    The bound arrays must hold the values to compute with (the caller copies them there first).
    """

    def __init__(self, model: Any, params: Mapping[str, np.ndarray],
                 grads: Mapping[str, np.ndarray] | None = None) -> None:
        self.model = model
        self.params = params
        self.grads = grads
        self.active = False
        self._own: dict[str, tuple[Any, str, np.ndarray, np.ndarray | None]] = {}  # layer, name, param, grad

    def bind(self) -> bool:
        entries = _entries(self.model)
        if not entries or self.active:
            return self.active
        own = {key: (layer, name, layer.params[name], (layer.grads or {}).get(name)) for key, layer, name in entries}
        shapes_fit = all(_fits(self.params.get(key), param) for key, (_, _, param, _) in own.items()) and (
            self.grads is None or all(_fits(self.grads.get(key), param) and _fits(grad, param)
                                      for key, (_, _, param, grad) in own.items()))
        if not shapes_fit:  # another network than expected: whoever compares layouts says so
            return False
        copies = {key: param.copy() for key, (_, _, param, _) in own.items()}
        self._own = own
        if not (self._put(copies, None) and self._reads(copies) and self._put(self.params, self.grads)):
            self._restore(values=None)
            return False
        self.active = True
        return True

    def release(self) -> None:
        """Put the layers' own arrays back, holding the bound parameters' current values."""
        if self.active:
            self._restore(values=self.params)
        self.active = False

    def release_grads(self) -> None:
        """Put the layers' own gradient arrays back (the parameters stay bound)."""
        for layer, name, _, grad in self._own.values():
            if grad is not None:
                layer.grads[name] = grad
        self.grads = None

    # -- helpers ---------------------------------------------------------------------------------
    def _put(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray] | None) -> bool:
        """Put ``params`` (and ``grads``) into the layers' dicts; ``False`` if an entry does not
        stay there (``params`` built anew on every access, say)."""
        for key, (layer, name, _, _) in self._own.items():
            layer.params[name] = params[key]
            if layer.params[name] is not params[key]:
                return False
            if grads is not None:
                layer.grads[name] = grads[key]
                if layer.grads[name] is not grads[key]:
                    return False
        return True

    def _reads(self, copies: Mapping[str, np.ndarray]) -> bool:
        """Whether the model's output (evaluation mode, two random inputs) changes when each of
        ``copies`` (what the dicts hold now) changes, one at a time."""
        shape = getattr(self.model, "input_shape", None)
        if shape is None:
            return False
        x = np.random.default_rng(0).standard_normal((2, *shape)).astype(np.float32)
        try:
            base = np.array(self.model.logits(x, training=False), copy=True)
            for array in copies.values():
                saved = array.copy()
                array += 1
                try:
                    changed = not np.array_equal(self.model.logits(x, training=False), base)
                finally:
                    np.copyto(array, saved)
                if not changed:
                    return False
        except Exception:  # noqa: BLE001 - a layer that cannot take the probe: do not bind
            return False
        return True

    def _restore(self, values: Mapping[str, np.ndarray] | None) -> None:
        for key, (layer, name, param, grad) in self._own.items():
            if values is not None:
                np.copyto(param, values[key])
            layer.params[name] = param
            if grad is not None:
                layer.grads[name] = grad
        self._own = {}
