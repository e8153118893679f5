"""Built-in costs: values, numerical gradients, fusion with softmax, stability, errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gradcheck import check_function_gradient
from numpyml_core import ConfigError, create

N, C = 4, 5
LABELS = np.array([0, 3, 4, 3])


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def one_hot(labels, classes=C):
    return np.eye(classes)[labels]


def logits(seed=0, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal((N, C))


def soft_targets(seed=7):
    return softmax(np.random.default_rng(seed).standard_normal((N, C)))


TARGETS = {"labels": LABELS, "one_hot": one_hot(LABELS), "int_one_hot": one_hot(LABELS).astype(np.int64),
           "soft": soft_targets()}


def test_costs_are_registered():
    assert create("cost", "quadratic").fused_activation is None
    assert create("cost", "cross_entropy").fused_activation == "softmax"


# -- quadratic ----------------------------------------------------------------------------------
def test_quadratic_value_by_hand():
    cost = create("cost", "quadratic")
    outputs = np.array([[0.5, 0.5], [1.0, 0.0]])
    # sample 1 vs [1, 0]: 0.5 * (0.25 + 0.25); sample 2 vs [0, 1]: 0.5 * (1 + 1); mean over 2
    assert cost.loss(outputs, np.array([0, 1])) == pytest.approx((0.25 + 1.0) / 2)
    assert cost.loss(outputs, np.array([[1.0, 0.0], [0.0, 1.0]])) == pytest.approx(0.625)
    np.testing.assert_allclose(cost.gradient(outputs, np.array([0, 1])), [[-0.25, 0.25], [0.5, -0.5]])


@pytest.mark.parametrize("kind", ["labels", "one_hot", "soft"])
def test_quadratic_gradient_numerically(kind):
    cost = create("cost", "quadratic")
    outputs, targets = logits(1), TARGETS[kind]
    check_function_gradient(lambda o: cost.loss(o, targets), cost.gradient(outputs, targets), outputs)


def test_quadratic_regression_targets_and_dtype():
    cost = create("cost", "quadratic")
    outputs = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    targets = np.array([[0.0, 2.0, 5.0]])
    assert cost.loss(outputs, targets) == pytest.approx(2.5)
    grad = cost.gradient(outputs, targets)
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, [[1.0, 0.0, -2.0]])
    assert cost.gradient(outputs, np.array([2])).dtype == np.float32


def test_quadratic_does_not_modify_outputs():
    cost = create("cost", "quadratic")
    outputs = logits(2)
    before = outputs.copy()
    cost.gradient(outputs, LABELS)
    cost.loss(outputs, LABELS)
    np.testing.assert_array_equal(outputs, before)


# -- cross-entropy on probabilities -------------------------------------------------------------
def test_cross_entropy_value_by_hand():
    cost = create("cost", "cross_entropy")
    p = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]])
    expected = -(np.log(0.7) + np.log(0.5)) / 2
    assert cost.loss(p, np.array([0, 2])) == pytest.approx(expected)
    assert cost.loss(p, np.array([[1, 0, 0], [0, 0, 1]])) == pytest.approx(expected)
    smoothed = create("cost", "cross_entropy", label_smoothing=0.3)
    y = np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]])  # 0.7 * one-hot + 0.3 / 3
    assert smoothed.loss(p, np.array([0, 2])) == pytest.approx(-np.sum(y * np.log(p)) / 2)


@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_gradient_numerically(kind, smoothing):
    cost = create("cost", "cross_entropy", label_smoothing=smoothing)
    p, targets = soft_targets(3), TARGETS[kind]
    check_function_gradient(lambda q: cost.loss(q, targets), cost.gradient(p, targets), p)


@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_from_logits_gradient_numerically(kind, smoothing):
    cost = create("cost", "cross_entropy", label_smoothing=smoothing)
    z, targets = logits(4, scale=2.0), TARGETS[kind]
    check_function_gradient(
        lambda w: cost.loss_from_logits(w, targets), cost.gradient_from_logits(z, targets), z
    )


@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_fused_path_equals_softmax_then_plain_path(kind, smoothing):
    cost = create("cost", "cross_entropy", label_smoothing=smoothing)
    z, targets = logits(5, scale=3.0), TARGETS[kind]
    p = softmax(z)
    assert cost.loss_from_logits(z, targets) == pytest.approx(cost.loss(p, targets), rel=1e-10)
    # chain rule through the softmax Jacobian: dz = p * (dp - sum(dp * p))
    dp = cost.gradient(p, targets)
    through_softmax = p * (dp - np.sum(dp * p, axis=-1, keepdims=True))
    np.testing.assert_allclose(cost.gradient_from_logits(z, targets), through_softmax, rtol=1e-9, atol=1e-12)
    # and the fused gradient is (softmax - smoothed targets) / N
    y = one_hot(targets) if targets.ndim == 1 else targets
    y = y * (1 - smoothing) + smoothing / C
    np.testing.assert_allclose(cost.gradient_from_logits(z, targets), (p - y) / N, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_from_logits_is_finite_for_huge_logits(dtype, smoothing):
    cost = create("cost", "cross_entropy", label_smoothing=smoothing)
    z = np.array([[1000.0, -1000.0, 0.0], [-1000.0, -1000.0, 1000.0], [1000.0, 1000.0, -1000.0]], dtype=dtype)
    labels = np.array([1, 2, 0])
    with warnings.catch_warnings(), np.errstate(over="raise", invalid="raise", divide="raise"):
        warnings.simplefilter("error")
        loss = cost.loss_from_logits(z, labels)
        grad = cost.gradient_from_logits(z, labels)
    assert np.isfinite(loss) and np.all(np.isfinite(grad))
    assert grad.dtype == dtype
    # sample 1 is 2000 nats wrong, sample 2 right, sample 3 log(2) off (up to smoothing)
    if smoothing == 0:
        assert loss == pytest.approx((2000 + 0 + np.log(2)) / 3, rel=1e-6)
    np.testing.assert_allclose(grad.sum(axis=1), 0.0, atol=1e-6)


def test_plain_cross_entropy_survives_zero_probabilities():
    cost = create("cost", "cross_entropy")
    p = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        loss = cost.loss(p, np.array([1, 1]))
        grad = cost.gradient(p, np.array([1, 1]))
    assert np.isfinite(loss) and loss > 5  # -log(1e-7) / 2
    assert np.all(np.isfinite(grad)) and grad.dtype == np.float32


def test_gradients_keep_the_outputs_dtype():
    cost = create("cost", "cross_entropy", label_smoothing=0.1)
    z = logits(6).astype(np.float32)
    for targets in (LABELS, one_hot(LABELS)):
        assert cost.gradient_from_logits(z, targets).dtype == np.float32
        assert cost.gradient(softmax(z), targets).dtype == np.float32
        assert isinstance(cost.loss_from_logits(z, targets), float)


@pytest.mark.parametrize("smoothing", [-0.1, 1.0, 1.5])
def test_label_smoothing_is_validated(smoothing):
    with pytest.raises(ConfigError, match="label_smoothing"):
        create("cost", "cross_entropy", label_smoothing=smoothing)


@pytest.mark.parametrize("name", ["quadratic", "cross_entropy"])
def test_targets_that_do_not_fit_are_rejected(name):
    cost = create("cost", name)
    outputs = softmax(logits(0))
    with pytest.raises(ValueError, match="do not fit"):
        cost.loss(outputs, np.zeros((N, C + 1)))
    with pytest.raises(ValueError, match="labels must lie in"):
        cost.gradient(outputs, np.array([0, 1, 2, C]))
    with pytest.raises(ValueError, match="integer class labels"):
        cost.loss(outputs, LABELS.astype(np.float32))


@pytest.mark.parametrize("dtype", ["<i8", ">i4", "<i2", "u1", ">u4"])
def test_labels_out_of_range_are_rejected_in_every_integer_dtype(dtype):
    """The range check reads signed labels as unsigned (one reduction): a negative label, in either byte
    order, is rejected like one too large, and labels in range pass."""
    cost = create("cost", "cross_entropy")
    x = logits(0)[:4]
    bad = [[0, 1, 2, C]] + ([[0, -1, 2, 1]] if np.dtype(dtype).kind == "i" else [])
    for labels in bad:
        with pytest.raises(ValueError, match="labels must lie in"):
            cost.loss_and_gradient_from_logits(x, np.array(labels, dtype=dtype))
    good = np.array([0, 1, 2, C - 1], dtype=dtype)
    assert cost.loss_from_logits(x, good) == pytest.approx(cost.loss_from_logits(x, good.astype(np.int64)))


def test_fused_loss_and_gradient_equals_separate_calls():
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(7, 4)).astype(np.float32)
    labels = rng.integers(0, 4, size=7)
    onehot = np.eye(4, dtype=np.float32)[labels]
    for smoothing in (0.0, 0.2):
        cost = create("cost", "cross_entropy", label_smoothing=smoothing)
        for targets in (labels, onehot):
            loss, grad = cost.loss_and_gradient_from_logits(logits, targets)
            assert loss == pytest.approx(cost.loss_from_logits(logits, targets), rel=1e-6)
            np.testing.assert_allclose(grad, cost.gradient_from_logits(logits, targets), rtol=1e-6, atol=1e-7)
