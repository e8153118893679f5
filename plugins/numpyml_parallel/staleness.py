"""Gradient-staleness compensation for asynchronous updating: component kind ``staleness``, name ``compensation``.

``async`` uses it directly; ``ray_async`` (another plugin) through ``numpyml_core.create("staleness",
"compensation", rule=...)``. How the staleness ``tau`` is counted, the rules and their papers: docs/parallel.md.
"""

from __future__ import annotations

from typing import Literal, Mapping

import numpy as np

#: the rule names :class:`StalenessCompensation` accepts
RULES = ("none", "divide", "dc", "dc_adaptive")


class StalenessCompensation:
    """Applies one of :data:`RULES` to a gradient of staleness ``tau`` (1: fresh) before the optimizer step.

    ``divide`` divides the learning rate of that step by ``tau``; ``dc`` and ``dc_adaptive`` correct the
    gradient (delay-compensated ASGD, with a constant or an adaptive ``lambda``).
    """

    def __init__(self, rule: Literal["none", "divide", "dc", "dc_adaptive"] = "divide", dc_lambda: float = 0.04,
                 dc_momentum: float = 0.95):
        if rule not in RULES:
            raise ValueError(f"staleness must be one of {', '.join(repr(r) for r in RULES)}; got {rule!r}")
        if not dc_lambda >= 0:
            raise ValueError(f"dc_lambda must be at least 0, got {dc_lambda}")
        if not 0 <= dc_momentum < 1:
            raise ValueError(f"dc_momentum must be in [0, 1), got {dc_momentum}")
        self.rule = rule
        self.dc_lambda = float(dc_lambda)
        self.dc_momentum = float(dc_momentum)
        self.mean_square: dict[str, np.ndarray] = {}

    def learning_rate_factor(self, tau: int) -> float:
        """What the optimizer's learning rate is multiplied by for a gradient of staleness ``tau``."""
        return 1.0 / tau if self.rule == "divide" and tau > 1 else 1.0

    def compensate(self, grads: Mapping[str, np.ndarray], params_now: Mapping[str, np.ndarray],
                   params_stale: Mapping[str, np.ndarray], tau: int) -> None:
        """Correct ``grads`` in place, ``g += lambda * g * g * (w_now - w_stale)`` (the ``dc`` rules only)."""
        if self.rule not in ("dc", "dc_adaptive"):
            return
        adaptive = self.rule == "dc_adaptive"
        for name, grad in grads.items():
            if adaptive:  # mean_square <- momentum * mean_square + (1 - momentum) * g * g, even when fresh
                square = self.mean_square.get(name)
                if square is None:
                    square = self.mean_square[name] = np.zeros_like(grad)
                square *= self.dc_momentum
                square += (1.0 - self.dc_momentum) * (grad * grad)
            if tau > 1:  # adaptive: lambda = dc_lambda / sqrt(mean_square + 1e-7)
                scale = self.dc_lambda / np.sqrt(square + 1e-7) if adaptive else self.dc_lambda
                grad += (params_now[name] - params_stale[name]) * grad * grad * scale
