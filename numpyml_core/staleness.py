"""Gradient-staleness compensation for asynchronous updating (shared by ``async`` and ``ray_async``).

A gradient is *stale* when the parameters moved between the moment a worker read them and the
moment the parameter owner applies the gradient. The staleness ``tau`` of a gradient is counted in
parameter updates, including the gradient's own::

    tau = (updates applied before this one) - (updates applied when its worker read the parameters) + 1

so ``tau = 1`` means nothing else was applied in between (exactly what ``serial`` does), and with
``N`` workers taking turns ``tau`` is ``N`` in the steady state. This is the counting of Zhang,
Gupta, Lian and Liu, "Staleness-aware Async-SGD for Distributed Deep Learning", IJCAI 2016, whose
rule is the learning rate divided by the staleness.

Rules (``kind``):

* ``"none"``: apply the gradient as it is.
* ``"divide"``: apply it with the learning rate divided by ``tau`` (``learning_rate / tau``); the
  rule of the project numpyml replaces. The optimizer's ``learning_rate`` is changed for this one
  step only (not the gradient), so the rule means the same for Adam, which ignores gradient scale.
* ``"dc"``: delay-compensated ASGD (Zheng, Meng, Wang, Chen, Yu, Ma, Liu, "Asynchronous
  Stochastic Gradient Descent with Delay Compensation", ICML 2017): a first-order Taylor
  correction of the gradient towards the current parameters, with the diagonal of the outer
  product ``g * g`` approximating the Hessian::

      g <- g + lambda * g * g * (w_now - w_stale)          # element-wise; w_stale: the parameters read

  with a constant ``lambda`` (``dc_lambda``; the paper's DC-ASGD-c).
* ``"dc_adaptive"``: the same with the paper's adaptive ``lambda`` (DC-ASGD-a), element-wise::

      mean_square <- dc_momentum * mean_square + (1 - dc_momentum) * g * g
      lambda      <- dc_lambda / sqrt(mean_square + 1e-7)

``tau = 1`` leaves every rule a plain step (``w_now == w_stale``).
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

#: the rule names :class:`StalenessCompensation` accepts
RULES = ("none", "divide", "dc", "dc_adaptive")


class StalenessCompensation:
    """Applies one of :data:`RULES` to a gradient before the optimizer step (see the module)."""

    def __init__(self, kind: str = "divide", dc_lambda: float = 0.04, dc_momentum: float = 0.95):
        if kind not in RULES:
            raise ValueError(f"staleness must be one of {', '.join(repr(r) for r in RULES)}; got {kind!r}")
        if not dc_lambda >= 0:
            raise ValueError(f"dc_lambda must be at least 0, got {dc_lambda}")
        if not 0 <= dc_momentum < 1:
            raise ValueError(f"dc_momentum must be in [0, 1), got {dc_momentum}")
        self.kind = kind
        self.dc_lambda = float(dc_lambda)
        self.dc_momentum = float(dc_momentum)
        self._work: dict[str, np.ndarray] = {}
        self.mean_square: dict[str, np.ndarray] = {}

    def learning_rate_factor(self, tau: int) -> float:
        """What the optimizer's learning rate is multiplied by for a gradient of staleness ``tau``."""
        return 1.0 / tau if self.kind == "divide" and tau > 1 else 1.0

    def compensate(self, grads: Mapping[str, np.ndarray], params_now: Mapping[str, np.ndarray],
                   params_stale: Mapping[str, np.ndarray], tau: int) -> None:
        """Correct ``grads`` in place (the delay-compensation rules; the others leave it as is)."""
        if self.kind not in ("dc", "dc_adaptive"):
            return
        adaptive = self.kind == "dc_adaptive"
        for name, grad in grads.items():
            work = self._work.get(name)
            if work is None or work.shape != grad.shape:
                work = self._work[name] = np.empty_like(grad)
            if adaptive:  # the mean square is kept up to date even for fresh gradients
                square = self.mean_square.get(name)
                if square is None:
                    square = self.mean_square[name] = np.zeros_like(grad)
                np.multiply(grad, grad, out=work)
                square *= self.dc_momentum
                work *= 1.0 - self.dc_momentum
                square += work
            if tau <= 1:
                continue
            np.subtract(params_now[name], params_stale[name], out=work)  # w_now - w_stale
            work *= grad
            work *= grad                                                  # g * g * (w_now - w_stale)
            if adaptive:
                scale = self._adaptive_scale(name)
                work *= scale
            else:
                work *= self.dc_lambda
            grad += work

    def _adaptive_scale(self, name: str) -> np.ndarray:
        key = f"{name}#scale"
        square = self.mean_square[name]
        scale = self._work.get(key)
        if scale is None or scale.shape != square.shape:
            scale = self._work[key] = np.empty_like(square)
        np.add(square, 1e-7, out=scale)
        np.sqrt(scale, out=scale)
        np.divide(self.dc_lambda, scale, out=scale)
        return scale

    def describe(self) -> dict[str, Any]:
        """The rule and its settings, as plain values (for a run's summary)."""
        return {"kind": self.kind, "dc_lambda": self.dc_lambda, "dc_momentum": self.dc_momentum}
