"""The sgd optimizer: hand-computed updates, state round trip, validation, memory."""

from __future__ import annotations

import numpy as np
import pytest

from numpyml_core import ConfigError, create
from numpyml_optimizers.sgd import SGD

from optim_helpers import (
    assert_a_step_allocates_no_large_temporaries,
    assert_resumes_bitwise,
    f32,
    random_problem,
    stepped,
)


def make_params():
    return {"0.weight": f32(1.0, -2.0), "0.bias": f32(0.5)}


def test_plain_step_by_hand_and_in_place():
    params = make_params()
    weight, bias = params["0.weight"], params["0.bias"]
    grads = {"0.weight": f32(0.5, -1.0), "0.bias": f32(2.0)}
    create("optimizer", "sgd", learning_rate=0.1).step(params, grads)
    assert params["0.weight"] is weight and params["0.bias"] is bias
    np.testing.assert_allclose(weight, [0.95, -1.9], rtol=1e-6)
    np.testing.assert_allclose(bias, [0.3], rtol=1e-6)
    np.testing.assert_array_equal(grads["0.weight"], f32(0.5, -1.0))  # gradients untouched


def test_momentum_by_hand():
    params = {"0.weight": f32(1.0)}
    opt = create("optimizer", "sgd", learning_rate=0.1, momentum=0.9)
    opt.step(params, {"0.weight": f32(1.0)})  # v = -0.1, w = 0.9
    np.testing.assert_allclose(params["0.weight"], [0.9], rtol=1e-6)
    opt.step(params, {"0.weight": f32(2.0)})  # v = 0.9 * -0.1 - 0.2 = -0.29, w = 0.61
    np.testing.assert_allclose(params["0.weight"], [0.61], rtol=1e-6)
    np.testing.assert_allclose(opt.velocity["0.weight"], [-0.29], rtol=1e-6)
    assert opt.velocity["0.weight"].dtype == np.float32


def test_nesterov_by_hand():
    params = {"0.weight": f32(1.0)}
    opt = create("optimizer", "sgd", learning_rate=0.1, momentum=0.9, nesterov=True)
    opt.step(params, {"0.weight": f32(1.0)})  # v = -0.1; w += 0.9 * -0.1 - 0.1 = -0.19
    np.testing.assert_allclose(params["0.weight"], [0.81], rtol=1e-6)
    opt.step(params, {"0.weight": f32(2.0)})  # v = -0.29; w += 0.9 * -0.29 - 0.2 = -0.461
    np.testing.assert_allclose(params["0.weight"], [0.349], rtol=1e-6)


def test_l2_applies_to_weights_only():
    params = {"0.weight": f32(2.0), "0.bias": f32(2.0), "3.weight": f32(-4.0)}
    zero = {k: f32(0.0) for k in params}
    create("optimizer", "sgd", learning_rate=0.1, l2=0.5).step(params, zero)
    # weight: g = 0 + 0.5 * 2 = 1 -> 2 - 0.1; bias untouched
    np.testing.assert_allclose(params["0.weight"], [1.9], rtol=1e-6)
    np.testing.assert_allclose(params["3.weight"], [-3.8], rtol=1e-6)
    np.testing.assert_array_equal(params["0.bias"], f32(2.0))


def test_l2_enters_the_velocity():
    params = {"0.weight": f32(2.0)}
    opt = create("optimizer", "sgd", learning_rate=0.1, momentum=0.5, l2=0.5)
    opt.step(params, {"0.weight": f32(1.0)})  # g = 1 + 1 = 2, v = -0.2, w = 1.8
    opt.step(params, {"0.weight": f32(1.0)})  # g = 1 + 0.9 = 1.9, v = -0.1 - 0.19 = -0.29, w = 1.51
    np.testing.assert_allclose(params["0.weight"], [1.51], rtol=1e-6)


def test_decoupled_weight_decay_applies_to_weights_only():
    params = {"0.weight": f32(2.0), "0.bias": f32(2.0)}
    grads = {"0.weight": f32(1.0), "0.bias": f32(1.0)}
    create("optimizer", "sgd", learning_rate=0.1, weight_decay=0.5).step(params, grads)
    # weight: 2 * (1 - 0.05) - 0.1 * 1 = 1.8; bias: 2 - 0.1
    np.testing.assert_allclose(params["0.weight"], [1.8], rtol=1e-6)
    np.testing.assert_allclose(params["0.bias"], [1.9], rtol=1e-6)


def test_weight_decay_is_not_in_the_velocity():
    params = {"0.weight": f32(2.0)}
    opt = create("optimizer", "sgd", learning_rate=0.1, momentum=0.5, weight_decay=0.5)
    opt.step(params, {"0.weight": f32(0.0)})
    np.testing.assert_allclose(params["0.weight"], [1.9], rtol=1e-6)
    assert opt.velocity["0.weight"][0] == 0.0


def test_clip_norm_uses_the_global_norm():
    params = {"0.weight": f32(0.0, 0.0), "0.bias": f32(0.0)}
    grads = {"0.weight": f32(3.0, 0.0), "0.bias": f32(4.0)}  # global norm 5
    create("optimizer", "sgd", learning_rate=1.0, clip_norm=1.0).step(params, grads)
    np.testing.assert_allclose(params["0.weight"], [-0.6, 0.0], rtol=1e-6)
    np.testing.assert_allclose(params["0.bias"], [-0.8], rtol=1e-6)
    np.testing.assert_array_equal(grads["0.bias"], f32(4.0))  # gradients untouched


def test_clip_norm_leaves_small_gradients_alone():
    params = {"0.weight": f32(0.0, 0.0)}
    create("optimizer", "sgd", learning_rate=1.0, clip_norm=10.0).step(params, {"0.weight": f32(3.0, 4.0)})
    np.testing.assert_allclose(params["0.weight"], [-3.0, -4.0])


def test_clipping_comes_before_l2():
    params = {"0.weight": f32(1.0)}
    create("optimizer", "sgd", learning_rate=1.0, clip_norm=1.0, l2=1.0).step(params, {"0.weight": f32(10.0)})
    # g = 10 clipped to 1, plus l2 * w = 1 -> w = 1 - 2
    np.testing.assert_allclose(params["0.weight"], [-1.0], rtol=1e-6)


def test_learning_rate_is_settable():
    params = {"0.weight": f32(1.0)}
    opt = create("optimizer", "sgd", learning_rate=0.1)
    opt.learning_rate = 0.5
    opt.step(params, {"0.weight": f32(1.0)})
    np.testing.assert_allclose(params["0.weight"], [0.5])


FULL = dict(learning_rate=0.05, momentum=0.9, nesterov=True, l2=1e-3, weight_decay=1e-2, clip_norm=2.0)


@pytest.mark.parametrize("settings", [FULL, dict(learning_rate=0.1, momentum=0.5), dict(learning_rate=0.1)])
def test_state_round_trip_continues_bitwise(settings):
    params, grads = random_problem(0, steps=6)
    uninterrupted = stepped("sgd", settings, params, grads[:3])
    state = uninterrupted.state_dict()
    assert state["step"] == 3 and state["step"].dtype == np.int64
    if settings.get("momentum"):
        assert set(state) == {"step", "velocity.0.weight", "velocity.0.bias", "velocity.2.weight"}
        assert all(v.dtype == np.float32 for k, v in state.items() if k != "step")
    assert_resumes_bitwise("sgd", settings, uninterrupted, params, grads[3:])


def test_state_dict_is_a_copy():
    params, grads = random_problem(1, steps=6)
    opt = stepped("sgd", dict(learning_rate=0.1, momentum=0.9), params, grads[:1])
    state = opt.state_dict()
    state["velocity.0.bias"][...] = 123
    assert not np.any(opt.velocity["0.bias"] == 123)


def test_load_state_dict_rejects_foreign_state():
    with pytest.raises(ValueError, match="m.0.weight"):
        create("optimizer", "sgd").load_state_dict({"step": np.array(1), "m.0.weight": np.zeros(2)})


def test_a_step_allocates_no_large_temporaries():
    assert_a_step_allocates_no_large_temporaries("sgd", FULL)


@pytest.mark.parametrize(
    "settings, message",
    [
        (dict(learning_rate=0.0), "learning_rate"),
        (dict(learning_rate=-0.1), "learning_rate"),
        (dict(momentum=1.0), "momentum"),
        (dict(momentum=-0.1), "momentum"),
        (dict(l2=-1e-4), "l2"),
        (dict(weight_decay=-1e-4), "weight_decay"),
        (dict(clip_norm=0.0), "clip_norm"),
        (dict(nesterov=True), "nesterov"),
    ],
)
def test_invalid_settings(settings, message):
    with pytest.raises(ValueError, match=message):
        SGD(**settings)
    with pytest.raises(ConfigError, match=f"optimizer 'sgd': {message}"):
        create("optimizer", "sgd", **settings)


def test_schema_rejects_wrong_types():
    with pytest.raises(ConfigError, match="momentum"):
        create("optimizer", "sgd", momentum="high")
