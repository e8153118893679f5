"""Stochastic gradient descent with momentum, Nesterov momentum, L2, decoupled weight decay and
global-norm gradient clipping."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ._common import GROUPS_DOC, UpdateRule, check_common


class SGD(UpdateRule):
    """Stochastic gradient descent (Keras's formulation of momentum).

    Parameters: ``learning_rate`` (> 0), ``momentum`` (in ``[0, 1)``), ``nesterov`` (needs
    ``momentum > 0``), ``l2`` (>= 0, L2 regularization ``0.5 * l2 * ||w||^2`` added to the loss),
    ``weight_decay`` (>= 0, decoupled, scaled by the learning rate), ``clip_norm`` (> 0 or none).

    One step, for every parameter ``w`` with gradient ``g`` (``l2`` and ``weight_decay`` apply only
    to parameters whose qualified name ends with ``weight``, never to biases; every right-hand side
    uses ``w`` from before the step)::

        g <- g * min(1, clip_norm / ||all gradients||)     # global norm over every parameter
        g <- g + l2 * w
        w <- w - learning_rate * weight_decay * w
        v <- momentum * v - learning_rate * g                # v: velocity, zero at first
        w <- w + v                                           # nesterov: w + momentum * v - learning_rate * g
                                                             # momentum 0: w - learning_rate * g

    ``step`` updates the parameter arrays in place and leaves the gradients untouched. State:
    ``step`` (count of steps) and ``velocity.<name>`` for every parameter (with momentum).

    Nesterov momentum with decoupled weight decay (airbench's update) is ``nesterov = true``,
    ``weight_decay = ...``; PyTorch's coupled ``weight_decay`` is ``l2`` here.
    """

    def __init__(
        self,
        learning_rate: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        l2: float = 0.0,
        weight_decay: float = 0.0,
        clip_norm: float | None = None,
        groups: list[dict] | None = None,
    ) -> None:
        check_common(learning_rate, l2, weight_decay, clip_norm)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if nesterov and momentum == 0:
            raise ValueError("nesterov = true needs a momentum greater than 0")
        self.learning_rate = float(learning_rate)
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)
        self.l2 = float(l2)
        self.weight_decay = float(weight_decay)
        self.clip_norm = None if clip_norm is None else float(clip_norm)
        self.iterations = 0
        self.velocity: dict[str, np.ndarray] = {}
        self._scratch: dict[tuple[int, np.dtype], np.ndarray] = {}
        self._init_groups(groups, self.learning_rate)

    def step(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        self._check_gradients(params, grads)
        settings = self._settings(params)
        scale = self._clip_scale(grads, settings)
        for name, weight in params.items():
            setting = settings[name]
            if setting.frozen:
                continue
            lr = self.learning_rate * setting.lr_scale
            grad = grads[name]
            update = self._buffer(weight, 0)
            np.multiply(grad, lr * scale, out=update)  # update = lr * g (clipped)
            if setting.l2:
                extra = self._buffer(weight, 1)
                np.multiply(weight, lr * setting.l2, out=extra)
                update += extra  # update = lr * (g + l2 * w)
            if setting.weight_decay:
                weight *= 1 - lr * setting.weight_decay
            if self.momentum:
                velocity = self._velocity(name, weight)
                velocity *= self.momentum
                velocity -= update
                if self.nesterov:
                    extra = self._buffer(weight, 1)
                    np.multiply(velocity, self.momentum, out=extra)
                    extra -= update
                    weight += extra
                else:
                    weight += velocity
            else:
                weight -= update
        self.iterations += 1

    def _velocity(self, name: str, weight: np.ndarray) -> np.ndarray:
        velocity = self.velocity.get(name)
        if velocity is None:
            velocity = self.velocity[name] = np.zeros(weight.shape, dtype=np.float32)
        elif velocity.shape != weight.shape:
            raise ValueError(f"velocity of '{name}' has shape {velocity.shape}, the parameter {weight.shape}")
        return velocity

    # -- state -----------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        state = {"step": np.array(self.iterations, dtype=np.int64)}
        for name, velocity in self.velocity.items():
            state[f"velocity.{name}"] = velocity.copy()
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        unknown = [key for key in state if key != "step" and not key.startswith("velocity.")]
        if unknown:
            raise ValueError(f"not an sgd optimizer state: unexpected entries {sorted(unknown)}")
        velocity = {
            key[len("velocity."):]: np.array(value, copy=True)
            for key, value in state.items() if key.startswith("velocity.")
        }
        self.iterations = int(state["step"]) if "step" in state else 0
        self.velocity = velocity

    def __repr__(self) -> str:
        return (
            f"SGD(learning_rate={self.learning_rate}, momentum={self.momentum}, nesterov={self.nesterov}, "
            f"l2={self.l2}, weight_decay={self.weight_decay}, clip_norm={self.clip_norm}, groups={self.groups})"
        )


SGD.__doc__ = (SGD.__doc__ or "") + GROUPS_DOC
