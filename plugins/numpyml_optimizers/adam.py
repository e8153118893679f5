"""Adam (Kingma & Ba, 2015) with coupled L2, decoupled weight decay (AdamW) and global-norm
gradient clipping."""

from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ._common import GROUPS_DOC, UpdateRule, check_common


class Adam(UpdateRule):
    """Adam: adaptive moment estimation (Kingma & Ba, "Adam: A Method for Stochastic Optimization",
    ICLR 2015, Algorithm 1), with the AdamW option (Loshchilov & Hutter, "Decoupled Weight Decay
    Regularization", ICLR 2019).

    Parameters: ``learning_rate`` (> 0, the paper's alpha), ``beta_1`` and ``beta_2`` (in
    ``[0, 1)``, decay rates of the first and second moment estimates), ``epsilon`` (> 0),
    ``l2`` (>= 0, L2 regularization ``0.5 * l2 * ||w||^2`` added to the loss, so its gradient goes
    through the moments), ``weight_decay`` (>= 0, decoupled: AdamW, scaled by the learning rate,
    as PyTorch's ``AdamW``), ``clip_norm`` (> 0 or none: global-norm clipping as for ``sgd``).

    Step ``t`` (counted from 1), for every parameter ``w`` with gradient ``g`` (``l2`` and
    ``weight_decay`` apply only to parameters whose qualified name ends with ``weight``, never to
    biases, as in ``sgd``; every right-hand side uses ``w`` from before the step)::

        g <- g * min(1, clip_norm / ||all gradients||)     # global norm over every parameter
        g <- g + l2 * w
        m <- beta_1 * m + (1 - beta_1) * g                   # m, v: zero at first
        v <- beta_2 * v + (1 - beta_2) * g * g
        m_hat <- m / (1 - beta_1 ** t)                       # bias correction
        v_hat <- v / (1 - beta_2 ** t)
        w <- w - learning_rate * weight_decay * w
        w <- w - learning_rate * m_hat / (sqrt(v_hat) + epsilon)

    This is the published rule with epsilon added to ``sqrt(v_hat)`` (as in the paper and in
    PyTorch's ``Adam``/``AdamW``; Keras adds it to ``sqrt(v)`` instead, which differs only while the
    bias correction matters). ``step`` updates the parameter arrays in place, leaves the gradients
    untouched and allocates nothing after the first step. State: ``step`` (the ``t`` of the last
    step) and ``m.<name>``, ``v.<name>`` for every parameter, restored exactly by
    ``load_state_dict``. A group's ``lr_scale`` scales both the step and the decoupled decay; its
    parameters keep the shared step count ``t`` (a parameter frozen for a while resumes with the
    bias correction of the current step).
    """

    def __init__(
        self,
        learning_rate: float = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
        groups: list[dict] | None = None,
    ) -> None:
        check_common(learning_rate, l2, weight_decay, clip_norm)
        if not 0 <= beta_1 < 1:
            raise ValueError(f"beta_1 must be in [0, 1), got {beta_1}")
        if not 0 <= beta_2 < 1:
            raise ValueError(f"beta_2 must be in [0, 1), got {beta_2}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be greater than 0, got {epsilon}")
        self.learning_rate = float(learning_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.l2 = float(l2)
        self.weight_decay = float(weight_decay)
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.iterations = 0
        self.m: dict[str, np.ndarray] = {}
        self.v: dict[str, np.ndarray] = {}
        self._scratch: dict[tuple[int, np.dtype], np.ndarray] = {}
        self._init_groups(groups, self.learning_rate)

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        self._check_gradients(params, grads)
        settings = self._settings(params)
        t = self.iterations + 1
        scale = self._clip_scale(grads, settings)
        step_size = self.learning_rate / (1.0 - self.beta_1 ** t)
        bias_correction_2_sqrt = math.sqrt(1.0 - self.beta_2 ** t)
        for name, weight in params.items():
            setting = settings[name]
            if setting.frozen:
                continue
            lr = self.learning_rate * setting.lr_scale
            grad = grads[name]
            if scale != 1.0 or setting.l2:
                g = self._buffer(weight, 0)
                np.multiply(grad, scale, out=g)
                if setting.l2:
                    extra = self._buffer(weight, 1)
                    np.multiply(weight, setting.l2, out=extra)
                    g += extra
            else:
                g = grad
            m = self._moment(self.m, "m", name, weight)
            v = self._moment(self.v, "v", name, weight)
            # m <- m + (1 - beta_1) * (g - m)  ==  beta_1 * m + (1 - beta_1) * g
            work = self._buffer(weight, 1)
            np.subtract(g, m, out=work)
            work *= 1.0 - self.beta_1
            m += work
            # v <- beta_2 * v + (1 - beta_2) * g * g
            v *= self.beta_2
            np.multiply(g, g, out=work)
            work *= 1.0 - self.beta_2
            v += work
            if setting.weight_decay:
                weight *= 1.0 - lr * setting.weight_decay
            # w <- w - lr / (1 - beta_1^t) * m / (sqrt(v) / sqrt(1 - beta_2^t) + epsilon)
            np.sqrt(v, out=work)
            work /= bias_correction_2_sqrt
            work += self.epsilon
            np.divide(m, work, out=work)
            work *= step_size * setting.lr_scale
            weight -= work
        self.iterations = t

    @staticmethod
    def _moment(store: dict[str, np.ndarray], kind: str, name: str, weight: np.ndarray) -> np.ndarray:
        moment = store.get(name)
        if moment is None:
            moment = store[name] = np.zeros(weight.shape, dtype=np.float32)
        elif moment.shape != weight.shape:
            raise ValueError(f"{kind} of '{name}' has shape {moment.shape}, the parameter {weight.shape}")
        return moment

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"step": np.array(self.iterations, dtype=np.int64)}
        for name, moment in self.m.items():
            state[f"m.{name}"] = moment.copy()
        for name, moment in self.v.items():
            state[f"v.{name}"] = moment.copy()
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        unknown = [key for key in state if key != "step" and not key.startswith(("m.", "v."))]
        if unknown:
            raise ValueError(f"not an adam optimizer state: unexpected entries {sorted(unknown)}")
        m = {key[2:]: np.array(value, dtype=np.float32, copy=True) for key, value in state.items() if key.startswith("m.")}
        v = {key[2:]: np.array(value, dtype=np.float32, copy=True) for key, value in state.items() if key.startswith("v.")}
        if set(m) != set(v):
            raise ValueError(
                f"not a complete adam optimizer state: first moments for {sorted(m)} but second moments for {sorted(v)}"
            )
        step = int(state["step"]) if "step" in state else 0
        if step < 0 or (m and step == 0):
            raise ValueError(f"not a valid adam optimizer state: step {step} with {len(m)} moment pairs")
        self.iterations = step
        self.m = m
        self.v = v

    def __repr__(self) -> str:
        return (
            f"Adam(learning_rate={self.learning_rate}, beta_1={self.beta_1}, beta_2={self.beta_2}, "
            f"epsilon={self.epsilon}, l2={self.l2}, weight_decay={self.weight_decay}, clip_norm={self.clip_norm}, groups={self.groups})"
        )


Adam.__doc__ = (Adam.__doc__ or "") + GROUPS_DOC
