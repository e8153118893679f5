"""Costs: the mean loss over a batch and its gradient with respect to the network's outputs.

Targets are either integer class labels ``(N,)`` for outputs ``(N, C)``, or arrays shaped like
the outputs (one-hot rows, probabilities, regression targets). Losses are Python floats (the mean
over the batch); gradients carry the ``1/N`` and have the outputs' dtype.
"""

from __future__ import annotations

import numpy as np


def _labels_or_dense(outputs: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(labels, None)`` for integer class labels, ``(None, dense_targets)`` for targets shaped like
    the outputs; ``ValueError`` for anything else."""
    targets = np.asarray(targets)
    if targets.shape == outputs.shape:
        return None, targets
    if outputs.ndim == 2 and targets.shape == outputs.shape[:1]:
        if targets.dtype.kind not in "iu":  # (kind: 0.2 us, np.issubdtype: 2 us)
            raise ValueError(
                f"targets of shape {targets.shape} must be integer class labels, got dtype {targets.dtype}"
            )
        # one reduction instead of min() and max(): seen as unsigned (same byte order), a negative label is huge
        if targets.size and targets.view(targets.dtype.str.replace("i", "u")).max() >= outputs.shape[1]:
            raise ValueError(
                f"class labels must lie in [0, {outputs.shape[1] - 1}] for {outputs.shape[1]} outputs, "
                f"got labels from {targets.min()} to {targets.max()}"
            )
        return targets, None
    raise ValueError(
        f"targets of shape {targets.shape} do not fit outputs of shape {outputs.shape}: expected integer "
        f"labels of shape {outputs.shape[:1]} or an array of shape {outputs.shape}"
    )


def _clip_floor(dtype: np.dtype) -> float:
    """The smallest probability taken into a log: 1e-7 for float32 (Keras's epsilon), less for
    wider floats."""
    return 1e-7 if np.dtype(dtype).itemsize <= 4 else 1e-15


class Quadratic:
    """Quadratic (mean squared error) cost: ``mean over samples of 0.5 * sum((outputs - targets)**2)``.

    Outputs ``(N, ...)``; integer labels ``(N,)`` are compared with one-hot rows of the output
    width. Gradient: ``(outputs - targets) / N``.
    """

    fused_activation = None

    def _error(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        labels, dense = _labels_or_dense(outputs, targets)
        if labels is not None:
            error = outputs.copy()
            error[np.arange(len(labels)), labels] -= 1
            return error
        return np.subtract(outputs, dense, dtype=outputs.dtype)

    def loss(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        error = self._error(outputs, targets)
        return 0.5 * float(np.vdot(error, error)) / len(outputs)

    def gradient(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        error = self._error(outputs, targets)
        error /= len(outputs)
        return error


class CrossEntropy:
    """Categorical cross-entropy: ``mean over samples of -sum(y * log(p))`` over the last axis.

    ``label_smoothing`` in ``[0, 1)`` replaces the targets ``y`` by ``y * (1 - s) + s / C``.
    Outputs ``(N, C)`` are probabilities; targets are integer labels ``(N,)`` or one-hot /
    probability rows ``(N, C)``.

    Fused with a ``softmax`` output head: ``loss_from_logits`` and ``gradient_from_logits`` work on
    the logits with log-sum-exp, finite for any finite logits; the gradient is ``(softmax - y) / N``.
    Without fusion, ``loss`` and ``gradient`` work on probabilities clipped away from 0
    (gradient ``-y / p / N``).
    """

    fused_activation = "softmax"

    def __init__(self, label_smoothing: float = 0.0) -> None:
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = float(label_smoothing)

    # -- probabilities ---------------------------------------------------------------------------
    def loss(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        labels, dense = _labels_or_dense(outputs, targets)
        return self._loss_from_log_p(np.log(np.maximum(outputs, _clip_floor(outputs.dtype))), labels, dense)

    def gradient(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        labels, dense = _labels_or_dense(outputs, targets)
        floor = _clip_floor(outputs.dtype)
        n, classes = len(outputs), outputs.shape[-1]
        s = self.label_smoothing
        p = np.maximum(outputs, floor)
        if labels is not None:
            rows = np.arange(n)
            if s:
                grad = np.divide(-s / classes, p)
            else:
                grad = np.zeros_like(p)
            grad[rows, labels] -= (1 - s) / p[rows, labels]
        else:
            grad = -self._smooth(dense, classes) / p
        grad /= n
        return grad.astype(outputs.dtype, copy=False)

    # -- logits (fused with softmax) -------------------------------------------------------------
    def loss_from_logits(self, logits: np.ndarray, targets: np.ndarray) -> float:
        labels, dense = _labels_or_dense(logits, targets)
        shifted, _, sums = _shifted_exp(logits)
        return self._loss_from_shifted(shifted, np.log(sums), labels, dense)

    def gradient_from_logits(self, logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
        labels, dense = _labels_or_dense(logits, targets)
        _, softmax, sums = _shifted_exp(logits)
        softmax /= sums
        return self._gradient_from_softmax(softmax, labels, dense)

    def loss_and_gradient_from_logits(self, logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """Both at once, from one pass of exponentials (what the trainer calls every batch): the gradient is
        ``(softmax - smoothed targets) / n``, the softmax ``exp(shifted) / sum``, the loss from the same sums."""
        labels, dense = _labels_or_dense(logits, targets)
        shifted, softmax, sums = _shifted_exp(logits)
        loss = self._loss_from_shifted(shifted, np.log(sums), labels, dense)
        softmax /= sums
        return loss, self._gradient_from_softmax(softmax, labels, dense)

    def _loss_from_shifted(self, shifted: np.ndarray, log_sums: np.ndarray, labels: np.ndarray | None,
                           dense: np.ndarray | None) -> float:
        """The loss from the logits less their row maxima and the log of their rows' sums of exponentials
        (``log_p = shifted - log_sums``). For labels without forming ``log_p``: per row, ``log_sums - (1 - s) *
        shifted[label] - s / C * sum(shifted)``, summed in float64 (a few calls fewer on a batch's small arrays)."""
        if labels is None:
            return self._loss_from_log_p(shifted - log_sums, None, dense)
        n, classes = shifted.shape[0], shifted.shape[-1]
        s = self.label_smoothing
        per_row = shifted[np.arange(n), labels]  # a new array
        if s:
            per_row *= 1 - s
            per_row += s / classes * shifted.sum(axis=-1)
        return float(np.subtract(log_sums.reshape(-1), per_row).sum(dtype=np.float64)) / n

    def _loss_from_log_p(self, log_p: np.ndarray, labels: np.ndarray | None, dense: np.ndarray | None) -> float:
        """``-mean(sum(smoothed targets * log_p))``, summed in float64; for labels, only the picked entries
        (plus the row sums when smoothing)."""
        n, classes = log_p.shape[0], log_p.shape[-1]
        s = self.label_smoothing
        if labels is None:
            return -float(np.sum(self._smooth(dense, classes) * log_p, dtype=np.float64)) / n
        total = (1 - s) * float(log_p[np.arange(n), labels].sum(dtype=np.float64))
        if s:
            total += s / classes * float(log_p.sum(dtype=np.float64))
        return -total / n

    def _gradient_from_softmax(self, softmax: np.ndarray, labels: np.ndarray | None, dense: np.ndarray | None) -> np.ndarray:
        """``(softmax - smoothed targets) / n``, computed in place in ``softmax`` (a new array)."""
        n, classes = softmax.shape[0], softmax.shape[-1]
        s = self.label_smoothing
        if labels is None:
            softmax -= self._smooth(dense, classes)
        else:
            softmax[np.arange(n), labels] -= 1 - s
            if s:
                softmax -= s / classes
        softmax /= n
        return softmax

    def _smooth(self, targets: np.ndarray, classes: int) -> np.ndarray:
        if not self.label_smoothing:
            return targets
        return targets * (1 - self.label_smoothing) + self.label_smoothing / classes

    def __repr__(self) -> str:
        return f"CrossEntropy(label_smoothing={self.label_smoothing})"


def _shifted_exp(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``logits`` less each row's maximum, its exponentials and their row sums (``keepdims``): new float arrays
    (integer logits become float32); the softmax is ``exps / sums``, ``log(softmax)`` is ``shifted - log(sums)``.
    ndarray methods: a few us less each than ``np.max``/``np.sum`` on a batch's small arrays."""
    logits = logits if logits.dtype.kind == "f" else logits.astype(np.float32)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    with np.errstate(under="ignore"):
        exps = np.exp(shifted)
    return shifted, exps, exps.sum(axis=-1, keepdims=True)


#: registered name -> class
COSTS: dict[str, type] = {"quadratic": Quadratic, "cross_entropy": CrossEntropy}
