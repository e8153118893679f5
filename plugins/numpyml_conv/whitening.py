"""The patch-whitening layer: a convolution whose filters whiten image patches (airbench's first layer)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._util import as_float, check_image_input, check_image_shape, component_from_spec, match_dtype, require_forward
from .parts import one_blas_thread


class PatchWhitening:
    """A ``kernel_size`` x ``kernel_size`` convolution (stride 1, no padding) whose filters are the
    eigenvectors of the training images' patch covariance, each divided by
    ``sqrt(eigenvalue + epsilon)``, followed (with ``negate``) by the same filters negated
    (Jordan's airbench, arXiv 2404.00498: 2x2 filters from 5,000 training images, only the bias
    trained). Its outputs are decorrelated patch coordinates of unit variance, largest eigenvalue
    first.

    The filters are **not parameters**: they live in ``state["weight"]`` ``(k, k, in, filters)``
    (saved with the model, never seen by the optimizer); ``params`` holds only ``bias``
    ``(filters,)`` (when ``bias``), ``filters = k*k*in`` times 2 with ``negate``. Until
    :meth:`initialize_from_data` is called the filters are those of an identity covariance (the
    patch's pixels, and their negatives, divided by ``sqrt(1 + epsilon)``): select the
    ``data_initialization`` callback, which calls it with the first ``samples`` training images
    before the first batch (a model file keeps the fitted filters)::

        [[model.layers]]
        type = "patch_whitening"

        [[callbacks]]
        type = "data_initialization"
        samples = 5000

    ``center``: subtract the patch mean before the covariance (airbench does not: the second
    moment). Shapes: input ``(N, H, W, in)``, output ``(N, H-k+1, W-k+1, filters)``. Forward: the
    ``k*k`` shifted views of the input side by side, one matrix product; backward: ``dy @ W.T``
    added back tap by tap (``k*k`` strided additions, no per-sample loop).
    """

    example_input_shape = (5, 5, 2)

    def __init__(self, kernel_size: int = 2, epsilon: float = 5e-4, negate: bool = True, center: bool = False,
                 bias: bool = True, bias_initializer: str | dict = "zeros") -> None:
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, int) or kernel_size < 1:
            raise ValueError(f"kernel_size must be a positive integer, got {kernel_size!r}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be greater than 0, got {epsilon}")
        self.kernel_size = kernel_size
        self.epsilon = float(epsilon)
        self.negate = bool(negate)
        self.center = bool(center)
        self.bias = bool(bias)
        self.bias_initializer: Any = component_from_spec("initializer", bias_initializer, "bias_initializer")
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.state: dict[str, np.ndarray] = {}
        self.input_gradient = True
        self.input_shape: tuple[int, int, int] | None = None
        self.eigenvalues: np.ndarray | None = None
        self._x_shape: tuple[int, ...] | None = None

    # -- building and fitting ----------------------------------------------------------------------
    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        h, w, c = check_image_shape(tuple(input_shape), "patch_whitening")
        k = self.kernel_size
        if k > h or k > w:
            raise ValueError(f"patch_whitening: kernel_size {k} is larger than the {h}x{w} image")
        self.input_shape = (h, w, c)
        dim = k * k * c
        filters = 2 * dim if self.negate else dim
        self.state = {"weight": np.zeros((k, k, c, filters), dtype=np.float32)}
        self._set_filters(np.ones(dim), np.eye(dim))
        self.params = {}
        if self.bias:
            self.params["bias"] = np.asarray(self.bias_initializer((filters,), rng, np.float32), dtype=np.float32)
        self.grads = {name: np.zeros_like(value) for name, value in self.params.items()}
        return (h - k + 1, w - k + 1, filters)

    def _set_filters(self, eigenvalues: np.ndarray, eigenvectors: np.ndarray) -> None:
        """Columns of ``eigenvectors`` (patch coordinates in (row, column, channel) order) scaled
        by ``1 / sqrt(eigenvalue + epsilon)``, largest eigenvalue first, then negated (in place)."""
        order = np.argsort(eigenvalues, kind="stable")[::-1]
        scaled = eigenvectors[:, order] / np.sqrt(np.maximum(eigenvalues[order], 0) + self.epsilon)
        if self.negate:
            scaled = np.concatenate([scaled, -scaled], axis=1)
        weight = self.state["weight"]
        weight[...] = scaled.reshape(weight.shape).astype(np.float32)
        self.eigenvalues = np.asarray(eigenvalues[order], dtype=np.float64)

    def patch_covariance(self, x: np.ndarray, chunk: int = 256) -> np.ndarray:
        """The ``(k*k*in, k*k*in)`` second moment (or covariance, with ``center``) of every
        ``k`` x ``k`` patch of the images ``x``, accumulated in float64 a chunk of images at a time."""
        x = np.asarray(x)
        check_image_input(x, self.input_shape, "patch_whitening")
        dim = self.state["weight"].shape[0] * self.state["weight"].shape[1] * self.state["weight"].shape[2]
        moment = np.zeros((dim, dim))
        total = np.zeros(dim)
        count = 0
        for start in range(0, len(x), chunk):
            patches = self._patch_matrix(np.asarray(x[start:start + chunk], dtype=np.float64))
            moment += patches.T @ patches
            total += patches.sum(axis=0)
            count += len(patches)
        if count == 0:
            raise ValueError("patch_whitening: no images to compute the patch covariance from")
        moment /= count
        if self.center:
            mean = total / count
            moment -= np.outer(mean, mean)
        return moment

    def initialize_from_data(self, x: np.ndarray) -> None:
        """Set the filters from the images ``x`` ``(N, H, W, in)`` (the layer's input, e.g. the
        first 5,000 training images): eigen-decomposition of their patch covariance."""
        eigenvalues, eigenvectors = np.linalg.eigh(self.patch_covariance(x))
        self._set_filters(eigenvalues, eigenvectors)

    # -- computing ---------------------------------------------------------------------------------
    def _patch_matrix(self, x: np.ndarray) -> np.ndarray:
        """``(N * out_h * out_w, k*k*in)``: every patch as a row, in (row, column, channel) order."""
        k = self.kernel_size
        n, h, w, c = x.shape
        oh, ow = h - k + 1, w - k + 1
        patches = np.empty((n, oh, ow, k, k, c), dtype=x.dtype)
        for i in range(k):
            for j in range(k):
                patches[:, :, :, i, j, :] = x[:, i:i + oh, j:j + ow, :]
        return patches.reshape(n * oh * ow, k * k * c)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = as_float(x)
        check_image_input(x, self.input_shape, "patch_whitening")
        weight = self.state["weight"]
        filters = weight.shape[-1]
        n, h, w, _ = x.shape
        k = self.kernel_size
        patches = self._patch_matrix(x)
        with one_blas_thread():  # as every product of a training step (docs/layers.md)
            y = patches @ match_dtype(weight, x.dtype).reshape(-1, filters)
        if self.bias:
            y += match_dtype(self.params["bias"], x.dtype)
        self._x_shape = x.shape  # all backward needs (the filters are constants)
        return y.reshape(n, h - k + 1, w - k + 1, filters)

    def backward(self, dy: np.ndarray) -> np.ndarray | None:
        require_forward(self._x_shape, self)
        shape, self._x_shape = self._x_shape, None
        filters = dy.shape[-1]
        flat = dy.reshape(-1, filters)
        if self.bias:
            with one_blas_thread():
                grad = np.ones(flat.shape[0], dtype=dy.dtype) @ flat
            if self.grads["bias"].dtype == grad.dtype:
                self.grads["bias"][...] = grad
            else:
                self.grads["bias"] = grad
        if not self.input_gradient:
            return None
        weight = match_dtype(self.state["weight"], dy.dtype)
        k = self.kernel_size
        n, h, w, c = shape
        oh, ow = h - k + 1, w - k + 1
        with one_blas_thread():
            dpatches = (flat @ weight.reshape(-1, filters).T).reshape(n, oh, ow, k, k, c)
        dx = np.zeros(shape, dtype=dy.dtype)
        for i in range(k):
            for j in range(k):
                dx[:, i:i + oh, j:j + ow, :] += dpatches[:, :, :, i, j, :]
        return dx

    def __repr__(self) -> str:
        return (f"PatchWhitening(kernel_size={self.kernel_size}, epsilon={self.epsilon}, negate={self.negate}, "
                f"center={self.center}, bias={self.bias})")
