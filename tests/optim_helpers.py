"""Helpers shared by the optimizer tests: small float32 arrays, random problems, state round trips, memory."""

from __future__ import annotations

import tracemalloc

import numpy as np

from numpyml_core import create


def f32(*values):
    return np.array(values, dtype=np.float32)


def random_problem(seed, steps=8):
    """Parameters (two weights and a bias, float32) and ``steps`` sets of gradients for them, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    params = {"0.weight": rng.standard_normal((6, 4)).astype(np.float32),
              "0.bias": rng.standard_normal(4).astype(np.float32),
              "2.weight": rng.standard_normal((3, 3, 2, 5)).astype(np.float32)}
    grads = [{k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()} for _ in range(steps)]
    return params, grads


def stepped(name: str, settings: dict, params, grads_per_step):
    """A new optimizer ``name`` with ``settings`` that has stepped ``params`` (in place) with each of the gradients."""
    opt = create("optimizer", name, **settings)
    for g in grads_per_step:
        opt.step(params, g)
    return opt


def assert_resumes_bitwise(name: str, settings: dict, uninterrupted, params, grads_per_step) -> None:
    """A new optimizer that loads the state of ``uninterrupted`` (which has stepped ``params``) continues exactly as
    ``uninterrupted`` does: after both step with each of the gradients, the same parameters and the same state."""
    saved = {k: v.copy() for k, v in uninterrupted.state_dict().items()}
    resumed_params = {k: v.copy() for k, v in params.items()}

    resumed = create("optimizer", name, **settings)
    resumed.load_state_dict(saved)
    for g in grads_per_step:
        uninterrupted.step(params, g)
        resumed.step(resumed_params, g)
    for key in params:
        np.testing.assert_array_equal(resumed_params[key], params[key])
    after_a, after_b = uninterrupted.state_dict(), resumed.state_dict()
    assert after_a.keys() == after_b.keys()
    for key in after_a:
        np.testing.assert_array_equal(after_a[key], after_b[key])


def assert_a_step_allocates_no_large_temporaries(name: str, settings: dict) -> None:
    """After the first step (which creates the optimizer's state and buffers), a step of optimizer ``name`` on a
    500x500 weight allocates less than a quarter of the weight's size."""
    rng = np.random.default_rng(0)
    params = {"0.weight": rng.standard_normal((500, 500)).astype(np.float32), "0.bias": np.zeros(500, np.float32)}
    grads = {k: rng.standard_normal(v.shape).astype(np.float32) for k, v in params.items()}
    opt = create("optimizer", name, **settings)
    opt.step(params, grads)  # state and buffers are created on the first step
    tracemalloc.start()
    try:
        opt.step(params, grads)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < params["0.weight"].nbytes / 4, f"a step allocated {peak} bytes"
