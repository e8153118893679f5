"""The adam optimizer: step by step against the published rule (Kingma & Ba, Algorithm 1; AdamW),
against torch.optim.Adam/AdamW when torch imports, exact state round trip, validation, memory."""

from __future__ import annotations

import math

import numpy as np
import pytest

from numpyml_core import create
from numpyml_optimizers.adam import Adam

from optim_helpers import (
    assert_a_step_allocates_no_large_temporaries,
    assert_resumes_bitwise,
    f32,
    random_problem,
    stepped,
)


def reference(params, grads_per_step, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, l2=0.0,
              weight_decay=0.0, clip_norm=None):
    """The published rule written out plainly in float64; returns the parameters after every step."""
    w = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in w.items()}
    v = {k: np.zeros_like(x) for k, x in w.items()}
    history = []
    for t, grads in enumerate(grads_per_step, start=1):
        g = {k: x.astype(np.float64) for k, x in grads.items()}
        if clip_norm is not None:
            norm = math.sqrt(sum(float(np.sum(x * x)) for x in g.values()))
            if norm > clip_norm:
                g = {k: x * (clip_norm / norm) for k, x in g.items()}
        new = {}
        for k in w:
            decays = k.endswith("weight")
            gk = g[k] + (l2 * w[k] if decays else 0.0)
            m[k] = beta_1 * m[k] + (1 - beta_1) * gk
            v[k] = beta_2 * v[k] + (1 - beta_2) * gk * gk
            m_hat = m[k] / (1 - beta_1 ** t)
            v_hat = v[k] / (1 - beta_2 ** t)
            decayed = w[k] - learning_rate * weight_decay * w[k] if decays else w[k]
            new[k] = decayed - learning_rate * m_hat / (np.sqrt(v_hat) + epsilon)
        w = new
        history.append({k: x.copy() for k, x in w.items()})
    return history


SETTINGS = [
    dict(),
    dict(learning_rate=0.01, beta_1=0.8, beta_2=0.99, epsilon=1e-6),
    dict(learning_rate=0.01, l2=0.1),
    dict(learning_rate=0.01, weight_decay=0.5),
    dict(learning_rate=0.05, clip_norm=1.5),
    dict(learning_rate=0.02, beta_1=0.0, l2=0.01, weight_decay=0.1, clip_norm=3.0),
]


@pytest.mark.parametrize("settings", SETTINGS)
def test_matches_the_published_rule_step_by_step(settings):
    params, grads = random_problem(0)
    expected = reference(params, grads, **settings)
    opt = create("optimizer", "adam", **settings)
    for t, g in enumerate(grads):
        opt.step(params, g)
        for key in params:
            assert params[key].dtype == np.float32
            np.testing.assert_allclose(params[key], expected[t][key], rtol=2e-5, atol=2e-6,
                                       err_msg=f"step {t + 1}, {key}")
    assert opt.iterations == len(grads)


def test_first_step_moves_every_weight_by_the_learning_rate():
    # with bias correction m_hat / sqrt(v_hat) = g / |g| at t = 1: the step is lr * sign(g)
    params = {"0.weight": f32(1.0, -2.0, 3.0)}
    create("optimizer", "adam", learning_rate=0.1, epsilon=1e-12).step(params, {"0.weight": f32(5.0, -0.01, 1e-3)})
    np.testing.assert_allclose(params["0.weight"], [0.9, -1.9, 2.9], rtol=1e-6)


def test_l2_and_weight_decay_leave_biases_alone():
    params = {"0.weight": f32(1.0), "0.bias": f32(1.0)}
    zero = {"0.weight": f32(0.0), "0.bias": f32(0.0)}
    create("optimizer", "adam", learning_rate=0.1, l2=1.0, weight_decay=1.0).step(params, zero)
    assert params["0.bias"][0] == 1.0
    # decoupled: 1 - 0.1 * 1 = 0.9, then the l2 gradient 1.0 moves it by lr * sign = 0.1
    np.testing.assert_allclose(params["0.weight"], [0.8], rtol=1e-6)


def test_learning_rate_is_settable():
    params = {"0.weight": f32(1.0)}
    opt = create("optimizer", "adam", learning_rate=0.1, epsilon=1e-12)
    opt.learning_rate = 0.5
    opt.step(params, {"0.weight": f32(2.0)})
    np.testing.assert_allclose(params["0.weight"], [0.5], rtol=1e-6)



def _torch_run(params, grads, cls_name, settings):
    torch = pytest.importorskip("torch")
    tensors = {k: torch.tensor(v.copy(), dtype=torch.float32, requires_grad=True) for k, v in params.items()}
    decay = settings.get("weight_decay", 0.0) if cls_name == "AdamW" else settings.get("l2", 0.0)
    groups = [
        {"params": [t for k, t in tensors.items() if k.endswith("weight")], "weight_decay": decay},
        {"params": [t for k, t in tensors.items() if not k.endswith("weight")], "weight_decay": 0.0},
    ]
    opt = getattr(torch.optim, cls_name)(groups, lr=settings.get("learning_rate", 0.001),
                                         betas=(settings.get("beta_1", 0.9), settings.get("beta_2", 0.999)),
                                         eps=settings.get("epsilon", 1e-7))
    history = []
    for g in grads:
        for k, t in tensors.items():
            t.grad = torch.tensor(g[k])
        opt.step()
        history.append({k: t.detach().numpy().copy() for k, t in tensors.items()})
    return history


@pytest.mark.parametrize("cls_name, settings", [
    ("Adam", dict(learning_rate=0.01)),
    ("Adam", dict(learning_rate=0.01, beta_1=0.5, beta_2=0.9, epsilon=1e-5, l2=0.1)),
    ("AdamW", dict(learning_rate=0.01, weight_decay=0.3)),
])
def test_matches_torch(cls_name, settings):
    params, grads = random_problem(3, steps=10)
    expected = _torch_run(params, grads, cls_name, settings)
    opt = create("optimizer", "adam", **settings)
    for t, g in enumerate(grads):
        opt.step(params, g)
        for key in params:
            np.testing.assert_allclose(params[key], expected[t][key], rtol=1e-5, atol=1e-6,
                                       err_msg=f"step {t + 1}, {key}")


FULL = dict(learning_rate=0.01, beta_1=0.85, beta_2=0.99, epsilon=1e-6, l2=1e-3, weight_decay=1e-2, clip_norm=2.0)


@pytest.mark.parametrize("settings", [FULL, dict()])
def test_state_round_trip_continues_bitwise(settings):
    params, grads = random_problem(1)
    uninterrupted = stepped("adam", settings, params, grads[:3])
    state = uninterrupted.state_dict()
    assert state["step"] == 3 and state["step"].dtype == np.int64
    assert set(state) == {"step"} | {f"{kind}.{k}" for kind in "mv" for k in params}
    assert all(v.dtype == np.float32 for k, v in state.items() if k != "step")
    assert_resumes_bitwise("adam", settings, uninterrupted, params, grads[3:])


def test_state_dict_is_a_copy():
    params, grads = random_problem(2)
    opt = stepped("adam", {}, params, grads[:1])
    state = opt.state_dict()
    state["m.0.bias"][...] = 123
    assert not np.any(opt.m["0.bias"] == 123)


@pytest.mark.parametrize("state, message", [
    ({"step": np.array(1), "velocity.0.weight": np.zeros(2)}, "velocity.0.weight"),
    ({"step": np.array(1), "m.0.weight": np.zeros(2)}, "second moments"),
    ({"step": np.array(0), "m.0.weight": np.zeros(2), "v.0.weight": np.zeros(2)}, "step 0"),
])
def test_load_state_dict_rejects_foreign_or_broken_state(state, message):
    with pytest.raises(ValueError, match=message):
        create("optimizer", "adam").load_state_dict(state)


def test_sgd_rejects_adam_state():
    params, grads = random_problem(2)
    opt = stepped("adam", {}, params, grads[:1])
    with pytest.raises(ValueError, match="not an sgd optimizer state"):
        create("optimizer", "sgd").load_state_dict(opt.state_dict())


def test_a_step_allocates_no_large_temporaries():
    assert_a_step_allocates_no_large_temporaries("adam", FULL)


@pytest.mark.parametrize("settings, message", [
    (dict(learning_rate=0.0), "learning_rate"),
    (dict(beta_1=1.0), "beta_1"),
    (dict(beta_2=-0.1), "beta_2"),
    (dict(epsilon=0.0), "epsilon"),
    (dict(l2=-1e-4), "l2"),
    (dict(weight_decay=-1e-4), "weight_decay"),
    (dict(clip_norm=0.0), "clip_norm"),
])
def test_invalid_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        Adam(**settings)
