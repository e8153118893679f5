"""Components for fast CIFAR-10 recipes (issue 21): gelu, scale, dirac, optimizer parameter groups,
weight averaging (ema/lookahead), alternating flips, test-time augmentation, patch whitening."""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest

from numpyml_core import ConfigError, create
from numpyml_kit import testing
from conftest import InterruptAt


# -- gelu and scale --------------------------------------------------------------------------------
def test_gelu_values_match_the_tanh_form_and_are_close_to_the_erf_form():
    x = np.linspace(-6, 6, 241)[None, :]
    y = create("layer", "gelu").forward(x, False)
    expected = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-15)
    exact = np.array([[v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x[0]]])
    assert np.max(np.abs(y - exact)) < 5e-4


def test_gelu_passes_the_layer_contract():
    testing.check_layer(lambda: create("layer", "gelu"), input_shape=(3, 3, 2))


def test_scale_multiplies_and_passes_the_layer_contract():
    layer = create("layer", "scale", factor=0.25)
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    np.testing.assert_array_equal(layer.forward(x, True), x * np.float32(0.25))
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.full_like(x, 0.25))
    testing.check_layer(functools.partial(create, "layer", "scale", factor=-1 / 9), input_shape=(4,))


@pytest.mark.parametrize("factor", [0.0, math.inf])
def test_scale_rejects_bad_factors(factor):
    with pytest.raises(ConfigError, match="factor"):
        create("layer", "scale", factor=factor)


# -- dirac -----------------------------------------------------------------------------------------
def test_dirac_makes_the_first_output_channels_an_identity():
    init = create("initializer", "dirac", others="zeros")
    w = init((3, 3, 2, 4), np.random.default_rng(0), np.float32)
    x = np.random.default_rng(1).standard_normal((2, 5, 5, 2)).astype(np.float32)
    conv = create("layer", "conv2d", filters=4, kernel_size=3, padding="same", bias="none",
                  weight_initializer={"type": "dirac", "others": "zeros"})
    conv.build((5, 5, 2), np.random.default_rng(0))
    np.testing.assert_array_equal(conv.params["weight"], w)
    y = conv.forward(x, False)
    np.testing.assert_allclose(y[..., :2], x, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(y[..., 2:], 0)


def test_dirac_keeps_the_other_initializer_for_the_remaining_channels():
    rng = np.random.default_rng(0)
    w = create("initializer", "dirac", gain=2.0, others="he")((2, 2, 3, 5), rng, np.float32)
    reference = create("initializer", "he")((2, 2, 3, 5), np.random.default_rng(0), np.float32)
    np.testing.assert_array_equal(w[..., 3:], reference[..., 3:])
    assert np.count_nonzero(w[..., :3]) == 3 and np.all(w[1, 1, np.arange(3), np.arange(3)] == 2.0)
    dense = create("initializer", "dirac", others="zeros")((3, 2), rng, np.float32)
    np.testing.assert_array_equal(dense, np.eye(3, 2, dtype=np.float32))


def test_dirac_passes_the_initializer_contract():
    testing.check_initializer(lambda: create("initializer", "dirac"))


# -- optimizer parameter groups ------------------------------------------------------------------
def _problem():
    rng = np.random.default_rng(3)
    params = {"0.weight": rng.standard_normal((3, 4)).astype(np.float32),
              "0.bias": rng.standard_normal(4).astype(np.float32),
              "2.gamma": rng.standard_normal(4).astype(np.float32)}
    grads = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()} for _ in range(5)]
    return params, grads


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_group_lr_scale_equals_a_separate_optimizer_with_that_rate(name):
    params, grads = _problem()
    extra = {"momentum": 0.9, "nesterov": True} if name == "sgd" else {}
    grouped = create("optimizer", name, learning_rate=0.01, weight_decay=0.1, **extra,
                     groups=[{"params": "*.bias", "lr_scale": 4.0}])
    mine = {k: v.copy() for k, v in params.items()}
    for g in grads:
        grouped.step(mine, g)
    plain = create("optimizer", name, learning_rate=0.01, weight_decay=0.1, **extra)
    fast = create("optimizer", name, learning_rate=0.04, weight_decay=0.1, **extra)
    rest = {k: v.copy() for k, v in params.items() if k != "0.bias"}
    bias = {"0.bias": params["0.bias"].copy()}
    for g in grads:
        plain.step(rest, {k: g[k] for k in rest})
        fast.step(bias, {"0.bias": g["0.bias"]})
    np.testing.assert_allclose(mine["0.bias"], bias["0.bias"], rtol=1e-6, atol=1e-7)
    for key in rest:
        np.testing.assert_array_equal(mine[key], rest[key])


def test_no_groups_is_bitwise_the_old_update():
    params, grads = _problem()
    a = {k: v.copy() for k, v in params.items()}
    b = {k: v.copy() for k, v in params.items()}
    one = create("optimizer", "sgd", learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, l2=1e-3)
    two = create("optimizer", "sgd", learning_rate=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, l2=1e-3,
                 groups=[{"params": "*", "lr_scale": 1.0}])
    for g in grads:
        one.step(a, g)
        two.step(b, g)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_frozen_groups_and_frozen_after_step():
    params, grads = _problem()
    opt = create("optimizer", "sgd", learning_rate=0.1, momentum=0.9,
                 groups=[{"params": ["*.gamma"], "frozen": True}, {"params": "0.bias", "frozen_after_step": 2}])
    work = {k: v.copy() for k, v in params.items()}
    for i, g in enumerate(grads):
        before = {k: v.copy() for k, v in work.items()}
        opt.step(work, g)
        np.testing.assert_array_equal(work["2.gamma"], before["2.gamma"])
        assert np.array_equal(work["0.bias"], before["0.bias"]) == (i >= 2)
        assert not np.array_equal(work["0.weight"], before["0.weight"])
    assert "velocity.2.gamma" not in opt.state_dict()


def test_group_weight_decay_applies_to_every_parameter_of_the_group():
    params, _ = _problem()
    zero = {k: np.zeros_like(v) for k, v in params.items()}
    opt = create("optimizer", "sgd", learning_rate=0.1, weight_decay=0.5,
                 groups=[{"params": "*.bias", "weight_decay": 0.2}, {"params": "*.gamma", "learning_rate": 0.2}])
    work = {k: v.copy() for k, v in params.items()}
    opt.step(work, zero)
    np.testing.assert_allclose(work["0.bias"], params["0.bias"] * np.float32(1 - 0.1 * 0.2), rtol=1e-6)
    np.testing.assert_allclose(work["0.weight"], params["0.weight"] * np.float32(1 - 0.1 * 0.5), rtol=1e-6)
    np.testing.assert_array_equal(work["2.gamma"], params["2.gamma"])  # no decay on gamma unless asked


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_groups_resume_bitwise(name):
    from optim_helpers import assert_resumes_bitwise

    params, grads = _problem()
    settings = {"learning_rate": 0.01, "weight_decay": 0.01,
                "groups": [{"params": "*.bias", "lr_scale": 8.0, "frozen_after_step": 4}, {"params": "2.*", "frozen": True}]}
    opt = create("optimizer", name, **settings)
    for g in grads[:3]:
        opt.step(params, g)
    assert_resumes_bitwise(name, settings, opt, params, grads[3:])
    testing.check_optimizer(lambda: create("optimizer", name, learning_rate=0.05,
                                           groups=[{"params": "*.bias", "lr_scale": 2.0}]))


def test_a_group_matching_nothing_is_an_error_at_the_first_step():
    params, grads = _problem()
    opt = create("optimizer", "sgd", groups=[{"params": "*.bais", "lr_scale": 2.0}])
    with pytest.raises(ConfigError, match=r"groups #1: params = \['\*\.bais'\] matches no parameter"):
        opt.step(params, grads[0])


@pytest.mark.parametrize("groups, message", [
    ([{"lr_scale": 2.0}], "'params' must be a glob"),
    ([{"params": "*", "lr": 2.0}], "unknown keys"),
    ([{"params": "*", "lr_scale": 0}], "'lr_scale' must be a number > 0"),
    ([{"params": "*", "lr_scale": 2.0, "learning_rate": 0.1}], "either 'lr_scale' or 'learning_rate'"),
    ([{"params": "*", "frozen": 1}], "'frozen' must be true or false"),
    ([{"params": "*", "frozen_after_step": -1}], "'frozen_after_step' must be an integer"),
    ([{"params": "*", "weight_decay": -1}], "'weight_decay' must be a number >= 0"),
])
def test_bad_groups_are_config_errors(groups, message):
    with pytest.raises(ConfigError, match=message):
        create("optimizer", "sgd", groups=groups)


def test_groups_from_an_experiment_file_train(numpyml_tiny_experiment):
    summary, run = numpyml_tiny_experiment(
        "optimizer", "sgd", {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 5e-4,
                             "groups": [{"params": "*.bias", "lr_scale": 4.0, "weight_decay": 0.0},
                                        {"params": "1.*", "frozen_after_step": 3}]})
    assert run.history[-1]["train_loss"] < run.history[0]["train_loss"]
    assert run.spec.optimizer.params["groups"][0]["lr_scale"] == 4.0


# -- ema and lookahead ---------------------------------------------------------------------------
def _same_run(a, b):
    from numpyml_core.plugin_api import load_tensors

    ta, tb = load_tensors(a / "model.safetensors"), load_tensors(b / "model.safetensors")
    assert sorted(ta) == sorted(tb)
    for key in ta:
        assert np.array_equal(ta[key], tb[key]), f"{key} differs"
    strip = lambda text: [",".join(c for i, c in enumerate(line.split(",")) if i != cols.index("seconds"))
                          for line in text.splitlines()]
    cols = (a / "metrics.csv").read_text().splitlines()[0].split(",")
    assert strip((a / "metrics.csv").read_text()) == strip((b / "metrics.csv").read_text())


BN_LAYERS = '''
[[model.layers]]
type = "batch_norm"
momentum = 0.6
'''

AVERAGING = {
    "ema": '\n[[callbacks]]\ntype = "ema"\ndecay = 0.9\nevery = 3\nwarmup_power = 2.0\nevaluate = true\n',
    "lookahead": '\n[[callbacks]]\ntype = "lookahead"\n',
}


@pytest.mark.parametrize("kind", sorted(AVERAGING))
@pytest.mark.parametrize("step", [1, 50, 75])
def test_averaging_resumes_bitwise(blobs_experiment, tmp_path, kind, step):
    import numpyml_core as nm

    base = blobs_experiment(AVERAGING[kind]).read_text().replace(
        'type = "flatten"\n', 'type = "flatten"\n' + BN_LAYERS, 1)
    path = tmp_path / "avg.toml"
    path.write_text(base)
    ref = nm.run(path, output=tmp_path / "ref", progress=False)
    with pytest.raises(nm.TrainingInterrupted):
        nm.run(path, output=tmp_path / "cut", callbacks=[InterruptAt(step)], progress=False)
    nm.run(path, output=tmp_path / "cut", resume=True, progress=False)
    _same_run(ref.run_dir, tmp_path / "cut")
    if kind == "ema":
        assert "ema_validation_accuracy" in ref.run.history[-1] and "ema_test_loss" in ref.run.history[-1]


def test_ema_update_rule_and_lookahead_write_back():
    from numpyml_training.averaging import EMA

    w = {"0.weight": np.array([1.0, 2.0], np.float32)}
    ema = EMA(decay=0.75)
    ema.average = {"0.weight": np.zeros(2, np.float32)}
    ema.update(w, 0.75)
    np.testing.assert_allclose(ema.average["0.weight"], [0.25, 0.5])
    np.testing.assert_array_equal(w["0.weight"], [1.0, 2.0])
    look = EMA(decay=0.5, lookahead=True)
    look.average = {"0.weight": np.zeros(2, np.float32)}
    look.update(w, 0.5)
    np.testing.assert_array_equal(w["0.weight"], [0.5, 1.0])
    assert EMA(decay=0.8, warmup_power=3).current_decay(50, 100) == pytest.approx(0.8 / 8)


def test_ema_loads_the_average_at_the_end_and_evaluates_it():
    from numpyml_training.averaging import EMA

    ema = EMA(decay=0.9, evaluate=True)
    summary, run = testing.run_tiny_experiment("callback", lambda: ema, epochs=3)
    for name, value in {**run.model.params(), **run.model.state()}.items():
        np.testing.assert_array_equal(value, ema.average[name])
    assert ema.updates == run.step
    row = run.history[-1]
    assert {"ema_validation_loss", "ema_validation_accuracy", "ema_test_accuracy"} <= set(row)
    assert row["ema_validation_accuracy"] > 0.5


@pytest.mark.parametrize("name", ["ema", "lookahead", "test_time_augmentation"])
def test_new_callbacks_pass_the_callback_contract(name):
    testing.check_callback(lambda: create("callback", name))


@pytest.mark.parametrize("params, message", [
    ({"decay": 1.0}, "decay"), ({"every": 0}, "every"), ({"lookahead": True, "evaluate": True}, "evaluate"),
])
def test_ema_rejects_bad_settings(params, message):
    with pytest.raises(ConfigError, match=message):
        create("callback", "ema", **params)


# -- test-time augmentation ------------------------------------------------------------------------
def test_tta_mirror_of_probabilities_is_the_trainers_eval_flip():
    from numpyml_training.evaluation import TestTimeAugmentation

    tta = TestTimeAugmentation(views="mirror", average="probabilities", when="every_epoch")
    summary, run = testing.run_tiny_experiment("callback", lambda: tta, epochs=1)
    from numpyml_core.trainer import evaluate as core_evaluate  # the reference only

    for split in ("validation", "test"):
        expected = core_evaluate(run.model, run.cost, run.splits[split], flip=True)
        assert run.history[-1][f"tta_{split}_accuracy"] == expected["accuracy"]
        assert run.history[-1][f"tta_{split}_loss"] == pytest.approx(expected["loss"], rel=1e-6)


def test_tta_views_and_weights():
    from numpyml_training.evaluation import Views

    x = np.arange(2 * 4 * 4 * 1, dtype=np.float32).reshape(2, 4, 4, 1)
    views = Views("mirror_translate", 1, "logits").images(x)
    assert len(views) == 6 and sum(w for _, w in views) == pytest.approx(1.0)
    np.testing.assert_array_equal(views[1][0], x[:, :, ::-1])
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    np.testing.assert_array_equal(views[2][0], padded[:, :4, :4])
    np.testing.assert_array_equal(views[4][0], padded[:, 2:6, 2:6])


def test_tta_at_the_end_goes_into_the_summary():
    summary, run = testing.run_tiny_experiment("callback", "test_time_augmentation", {"splits": ["test"]})
    assert 0.0 <= summary["tta_test_accuracy"] <= 1.0 and "tta_test_loss" in summary
    assert "tta_test_accuracy" not in run.history[-1]


# -- alternating flip ------------------------------------------------------------------------------
def test_alternating_flip_mirrors_a_fixed_half_then_the_other_half():
    from numpyml_augment.transforms import AlternatingFlip

    flip = AlternatingFlip(seed=5)
    indices = np.arange(20000)
    odd, even = flip.flips(1, indices), flip.flips(2, indices)
    assert np.all(odd ^ even) and abs(odd.mean() - 0.5) < 0.02
    np.testing.assert_array_equal(flip.flips(3, indices), odd)
    assert not np.array_equal(AlternatingFlip(seed=6).flips(1, indices), odd)
    x = np.random.default_rng(0).random((6, 3, 4, 2), dtype=np.float32)
    chosen = np.array([3, 17, 4, 99, 1000, 5])
    out = flip(x, np.random.default_rng(0), epoch=2, indices=chosen)
    mask = flip.flips(2, chosen)
    np.testing.assert_array_equal(out[mask], x[mask, :, ::-1])
    np.testing.assert_array_equal(out[~mask], x[~mask])
    flip.set_batch_context(1, chosen)
    np.testing.assert_array_equal(flip(x, np.random.default_rng(0))[~mask], x[~mask, :, ::-1])


def test_alternating_flip_without_context_warns_and_passes_the_contract():
    with pytest.warns(UserWarning, match="batch_context"):
        testing.check_transform(lambda: create("transform", "alternating_flip"))
    testing.check_callback(lambda: create("callback", "batch_context"))


def test_alternating_flip_in_a_run_gets_its_context_and_resumes_bitwise(blobs_experiment, tmp_path):
    import warnings

    import numpyml_core as nm

    extra = ('\n[[training.transforms]]\ntype = "alternating_flip"\nseed = 3\n'
             '\n[[callbacks]]\ntype = "batch_context"\n')
    path = blobs_experiment(extra)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ref = nm.run(path, output=tmp_path / "ref", progress=False)
        with pytest.raises(nm.TrainingInterrupted):
            nm.run(path, output=tmp_path / "cut", callbacks=[InterruptAt(40)], progress=False)
        nm.run(path, output=tmp_path / "cut", resume=True, progress=False)
    _same_run(ref.run_dir, tmp_path / "cut")


# -- patch whitening -------------------------------------------------------------------------------
def test_patch_whitening_passes_the_layer_contract_with_gradients():
    testing.check_layer(lambda: create("layer", "patch_whitening"))
    testing.check_layer(lambda: create("layer", "patch_whitening", kernel_size=3, negate=False), input_shape=(4, 5, 1))


def test_patch_whitening_weights_are_state_not_parameters():
    layer = create("layer", "patch_whitening")
    assert layer.build((8, 8, 3), np.random.default_rng(0)) == (7, 7, 24)
    assert sorted(layer.params) == ["bias"] and layer.state["weight"].shape == (2, 2, 3, 24)


def test_patch_whitening_whitens_the_patches_it_was_fitted_on():
    rng = np.random.default_rng(0)
    mixing = rng.standard_normal((3, 3))
    x = (rng.standard_normal((400, 8, 8, 3)) @ mixing).astype(np.float32)
    x[:, 1:] += 0.7 * x[:, :-1]  # correlated neighbours
    layer = create("layer", "patch_whitening", epsilon=1e-9, negate=False)
    layer.build((8, 8, 3), np.random.default_rng(0))
    layer.initialize_from_data(x)
    y = layer.forward(x, False).reshape(-1, 12).astype(np.float64)
    second_moment = y.T @ y / len(y)
    np.testing.assert_allclose(second_moment, np.eye(12), atol=2e-3)
    assert np.all(np.diff(layer.eigenvalues) <= 0)
    both = create("layer", "patch_whitening")
    both.build((8, 8, 3), np.random.default_rng(0))
    both.initialize_from_data(x)
    w = both.state["weight"].reshape(12, 24)
    np.testing.assert_array_equal(w[:, 12:], -w[:, :12])


def test_data_initialization_fits_patch_whitening_before_training_and_resume_keeps_it(blobs_experiment, tmp_path):
    import numpyml_core as nm
    from numpyml_core.plugin_api import load_tensors

    text = blobs_experiment('\n[[callbacks]]\ntype = "data_initialization"\nsamples = 300\n').read_text().replace(
        '[[model.layers]]\ntype = "flatten"',
        '[[model.layers]]\ntype = "patch_whitening"\n\n[[model.layers]]\ntype = "gelu"\n\n[[model.layers]]\n'
        'type = "flatten"', 1)
    text += '\n[[optimizer.groups]]\nparams = "0.bias"\nfrozen_after_step = 30\n'  # the whitening bias
    path = tmp_path / "white.toml"
    path.write_text(text)
    ref = nm.run(path, output=tmp_path / "ref", progress=False)
    weight = load_tensors(tmp_path / "ref" / "model.safetensors")["0.weight"]
    layer = create("layer", "patch_whitening")
    layer.build((6, 6, 1), np.random.default_rng(0))
    x, _ = ref.run.splits["train"].batch(np.arange(300))
    layer.initialize_from_data(x)
    np.testing.assert_array_equal(weight, layer.state["weight"])
    with pytest.raises(nm.TrainingInterrupted):
        nm.run(path, output=tmp_path / "cut", callbacks=[InterruptAt(20)], progress=False)
    nm.run(path, output=tmp_path / "cut", resume=True, progress=False)
    _same_run(ref.run_dir, tmp_path / "cut")


def test_data_initialization_passes_the_callback_contract():
    testing.check_callback(lambda: create("callback", "data_initialization", samples=50))
