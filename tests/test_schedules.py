"""Learning-rate schedules: exact values, binding, purity, validation, and use by the trainer."""

from __future__ import annotations

import math

import pytest

from numpyml_core import ConfigError, create
from numpyml_kit.testing import check_schedule, run_tiny_experiment
from numpyml_schedules.schedules import Constant, Cosine, OneCycle, StepDecay

BASE = 0.1


def rates(schedule, total: int, per_epoch: int, base: float = BASE) -> list[float]:
    if hasattr(schedule, "bind"):
        schedule.bind(total_steps=total, steps_per_epoch=per_epoch)
    return [schedule(step, step // per_epoch, base) for step in range(total)]


def test_constant():
    assert rates(Constant(), 5, 2) == [BASE] * 5
    check_schedule(Constant)


def test_step_every_n_epochs():
    schedule = StepDecay(step_size=2, gamma=0.5)
    assert [schedule(0, epoch, 0.8) for epoch in range(6)] == [0.8, 0.8, 0.4, 0.4, 0.2, 0.2]
    # a function of the epoch only: the step does not matter
    assert schedule(0, 3, 0.8) == schedule(12345, 3, 0.8) == 0.4


def test_step_milestones():
    schedule = StepDecay(milestones=[3, 5], gamma=0.1)
    got = [schedule(0, epoch, 1.0) for epoch in range(7)]
    assert got == pytest.approx([1, 1, 1, 0.1, 0.1, 0.01, 0.01], rel=1e-12)
    check_schedule(lambda: StepDecay(milestones=[2, 4]))


@pytest.mark.parametrize("params, message", [
    ({}, "exactly one of"),
    ({"step_size": 2, "milestones": [3]}, "exactly one of"),
    ({"step_size": 0}, "positive"),
    ({"milestones": [5, 3]}, "increasing"),
    ({"milestones": []}, "non-empty"),
    ({"step_size": 2, "gamma": 0}, "gamma"),
])
def test_step_bad_parameters(params, message):
    with pytest.raises(ConfigError, match=message):
        create("schedule", "step", **params)


def test_cosine_without_warmup():
    got = rates(Cosine(), 100, 10)
    assert got[0] == BASE
    assert got[50] == pytest.approx(BASE / 2, rel=1e-12)
    assert got[25] == pytest.approx(BASE * 0.5 * (1 + math.cos(math.pi / 4)), rel=1e-12)
    assert got[99] == pytest.approx(BASE * 0.5 * (1 + math.cos(math.pi * 0.99)), rel=1e-12)
    assert all(a >= b for a, b in zip(got, got[1:]))  # decreasing


def test_cosine_with_warmup_and_floor():
    schedule = Cosine(warmup_epochs=1, min_learning_rate=0.01)
    got = rates(schedule, 110, 10)  # 10 warm-up steps, then 100 of cosine
    assert got[:10] == pytest.approx([BASE * (i + 1) / 10 for i in range(10)], rel=1e-12)
    assert got[10] == pytest.approx(BASE, rel=1e-12)
    assert got[60] == pytest.approx(0.01 + (BASE - 0.01) / 2, rel=1e-12)
    assert got[109] == pytest.approx(0.01 + (BASE - 0.01) * 0.5 * (1 + math.cos(math.pi * 0.99)), rel=1e-12)
    assert min(got[10:]) > 0.01
    # fractional warm-up epochs round to whole steps
    schedule = Cosine(warmup_epochs=0.25)
    schedule.bind(total_steps=40, steps_per_epoch=10)
    assert schedule.warmup_steps() == 2 and schedule(0, 0, 1.0) == 0.5 and schedule(2, 0, 1.0) == 1.0
    check_schedule(lambda: Cosine(warmup_epochs=2, min_learning_rate=0.001))


def test_cosine_needs_bind():
    with pytest.raises(RuntimeError, match="bind"):
        Cosine()(0, 0, 0.1)


@pytest.mark.parametrize("anneal", ["linear", "cosine"])
def test_one_cycle(anneal):
    schedule = OneCycle(peak_fraction=0.3, anneal=anneal, div_factor=25, final_div_factor=1e4)
    got = rates(schedule, 101, 10, base=1.0)  # last step 100, peak at step 30
    start, end = 1 / 25, 1 / 25 / 1e4
    assert got[0] == pytest.approx(start, rel=1e-12)
    assert got[30] == pytest.approx(1.0, rel=1e-12) and max(got) == got[30]
    assert got[100] == pytest.approx(end, rel=1e-12)
    assert got[15] == pytest.approx((start + 1) / 2, rel=1e-12)  # both anneals cross the midpoint halfway
    assert got[65] == pytest.approx((1 + end) / 2, rel=1e-12)
    if anneal == "linear":
        assert got[10] == pytest.approx(start + (1 - start) / 3, rel=1e-12)
        assert got[86] == pytest.approx(1 + (end - 1) * 0.8, rel=1e-12)
    else:
        assert got[10] == pytest.approx(1 + (start - 1) * 0.5 * (1 + math.cos(math.pi / 3)), rel=1e-12)
        assert got[86] == pytest.approx(end + (1 - end) * 0.5 * (1 + math.cos(math.pi * 0.8)), rel=1e-12)
    assert all(a <= b for a, b in zip(got[:31], got[1:31]))
    assert all(a >= b for a, b in zip(got[30:], got[31:]))
    check_schedule(lambda: OneCycle(anneal=anneal))


def test_one_cycle_edges():
    schedule = OneCycle(peak_fraction=0.0, anneal="linear")
    got = rates(schedule, 11, 5)
    assert got[0] == BASE and got[10] == pytest.approx(BASE / 25 / 1e4)
    single = OneCycle()
    assert rates(single, 1, 1) == [BASE]
    with pytest.raises(ConfigError, match="peak_fraction"):
        create("schedule", "one_cycle", peak_fraction=1.0)
    with pytest.raises(ConfigError, match="anneal"):
        create("schedule", "one_cycle", anneal="exponential")


def test_schedules_drive_the_trainer():
    summary, run = run_tiny_experiment("schedule", "cosine", {"warmup_epochs": 1}, epochs=3, learning_rate=0.2)
    per_epoch = run.batches_per_epoch
    expected = Cosine(warmup_epochs=1)
    expected.bind(3 * per_epoch, per_epoch)
    for row in run.history:  # the rate of each epoch's last step
        last_step = row["epoch"] * per_epoch - 1
        assert row["learning_rate"] == pytest.approx(expected(last_step, row["epoch"] - 1, 0.2), rel=1e-12)
    summary, run = run_tiny_experiment("schedule", "step", {"step_size": 1, "gamma": 0.5}, epochs=3, learning_rate=0.2)
    assert [row["learning_rate"] for row in run.history] == pytest.approx([0.2, 0.1, 0.05])
