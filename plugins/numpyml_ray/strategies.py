"""``ray_sync`` and ``ray_async``: numpyml's update strategies with Ray actors as workers.

The driver (the ``numpyml run`` process) owns the parameters and the optimizer in both strategies,
as the local ``sync``/``async`` strategies do, and hands each update to the trainer
(``run.apply_update``): hooks (``numpyml_before_update``), schedules and checkpoints then work exactly
as with ``serial``. Each worker is a Ray actor holding a model replica
built from the experiment and the training split, shipped once per run through the object store;
a step sends one object-store reference to the parameters (shared by every worker) and the batch's
indices. Augmented batches (``[[training.transforms]]``) exist only in the driver and are sent as
arrays.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from typing import Any, Literal

import numpy as np

from numpyml_core import ConfigError, RunFailed, create
from numpyml_core.plugin_api import Update, validate_worker_count, share_ranges

INSTALL_HINT = "pip install 'numpyml[ray]' (or: uv pip install 'numpyml[ray]')"


def _ray_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("ray") is not None


def _import_ray() -> Any:
    # Under 'uv run', Ray would start every worker through 'uv run' with the working directory
    # shipped as a package (slow, and it re-syncs the environment): workers use this interpreter.
    # Ray reads the switch when it is first imported.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise ConfigError(
            f"the Ray strategies need Ray, which is not installed: {INSTALL_HINT}. The local strategies "
            "'sync' and 'async' need nothing more."
        ) from None
    return ray


def _check_reachable(address: str, seconds: float) -> None:
    """Fail within ``seconds`` when a ``host:port`` address does not answer."""
    if address in ("auto", "local") or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"[training.strategy] address: expected 'auto' or 'host:port', got '{address}'.")
    try:
        with socket.create_connection((host, int(port)), timeout=seconds):
            pass
    except OSError as exc:
        raise RunFailed(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}). Is 'ray start --head' running "
            "there, and is the port open? See docs/distributed.md."
        ) from None


class _RayWorkers:
    """What both Ray strategies share: starting Ray, the actors, the data, teardown."""

    label = "ray"

    def __init__(self, address: str | None, workers: int, cpus_per_worker: float, blas_threads: int,
                 timeout: float, connect_timeout: float) -> None:
        if isinstance(workers, bool) or workers < 1:
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        if not address:  # a Ray started here runs every actor on this machine: the local strategies' bound
            validate_worker_count(workers)
        if not cpus_per_worker > 0:
            raise ValueError(f"cpus_per_worker must be positive, got {cpus_per_worker}")
        if blas_threads < 1:
            raise ValueError(f"blas_threads must be at least 1, got {blas_threads}")
        if not timeout > 0 or not connect_timeout > 0:
            raise ValueError("timeout and connect_timeout must be positive")
        if not _ray_installed():
            raise ValueError(f"this strategy runs on Ray, which is not installed: {INSTALL_HINT}")
        self.address = address
        self.workers = workers
        self.cpus_per_worker = float(cpus_per_worker)
        self.blas_threads = blas_threads
        self.timeout = float(timeout)
        self.connect_timeout = float(connect_timeout)
        self.ray: Any = None
        self.actors: list[Any] = []
        self._started_ray = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def setup(self, run: Any) -> None:
        ray = self.ray = _import_ray()
        if not ray.is_initialized():
            if self.address:
                _check_reachable(self.address, self.connect_timeout)
            try:
                ray.init(address=self.address or "local", log_to_driver=False, include_dashboard=False,
                         **({} if self.address else {"num_cpus": max(os.cpu_count() or 1, 1)}))
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise RunFailed(f"cannot start or join Ray (address {self.address or 'local'}): {exc}") from None
            self._started_ray = True
        from .worker import RayGradientWorker

        train = run.splits["train"]
        data = ray.put(train)  # once per run; numpy buffers travel out of band, zero-copy on a node
        remote = ray.remote(RayGradientWorker)
        threads = str(self.blas_threads)
        env = {"OPENBLAS_NUM_THREADS": threads, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads,
               "RAY_USAGE_STATS_ENABLED": "0"}
        spec_table = run.spec.to_dict()
        self.actors = [
            remote.options(num_cpus=self.cpus_per_worker, max_restarts=0, runtime_env={"env_vars": env},
                           ).remote(spec_table, run.spec.source, tuple(run.model.input_shape), run.spec.seed,
                                    data, index)
            for index in range(self.workers)
        ]
        self.placements = self._get([actor.where.remote() for actor in self.actors], "starting")
        self._setup(run)

    def _setup(self, run: Any) -> None:
        pass

    def teardown(self, run: Any) -> None:
        ray, actors, self.actors = self.ray, self.actors, []
        if ray is None:
            return
        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False

    # -- helpers -----------------------------------------------------------------------------------
    def _get(self, refs: list[Any], what: str) -> list[Any]:
        ray = self.ray
        try:
            return ray.get(refs, timeout=self.timeout)
        except ray.exceptions.GetTimeoutError:
            raise RunFailed(f"Ray workers did not answer within {self.timeout:g} s while {what} "
                            "(raise [training.strategy] timeout for very slow batches).") from None
        except ray.exceptions.RayActorError as exc:
            index = self._index_of(exc)
            raise RunFailed(f"Ray worker {index} died while {what}: {_first_line(exc)}") from None
        except ray.exceptions.RayTaskError as exc:
            raise RunFailed(f"a Ray worker failed while {what}: {_first_line(exc)}") from None

    def _index_of(self, exc: Any) -> str:
        actor_id = getattr(exc, "actor_id", None)
        for index, actor in enumerate(self.actors):
            if actor_id is not None and actor._actor_id.hex() == actor_id:
                return str(index)
        return "?"

    def _weights(self, run: Any) -> Any:
        return self.ray.put({"params": run.model.params(), "state": run.model.state()})

    def _args(self, run: Any, x: np.ndarray, y: np.ndarray, share: slice | None = None) -> tuple:
        if run.transforms or run.batch_indices is None:
            return (None, x[share] if share else x, y[share] if share else y)
        indices = run.batch_indices
        return (indices[share] if share else indices, None, None)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return last[:500]


class RaySync(_RayWorkers):
    """Synchronous data-parallel updating on Ray actors.

    Each mini-batch is split into ``workers`` shares; each actor computes the mean gradient of its
    share on the same parameters; the driver averages them weighted by share size (the serial
    mini-batch gradient, up to float rounding) and hands them to the trainer as one update
    (``run.apply_update``: ``numpyml_before_update``, one optimizer step). Layer state (batch-norm
    statistics) changes by the shares' changes weighted the same way (``numpyml_core.plugin_api.Update``).

    ``address``: unset starts a local Ray instance for the run; ``"auto"`` or ``"host:port"`` joins
    an existing cluster (``ray start --head``); with a local instance ``workers`` is at most 4 per
    core unless the environment variable ``NUMPYML_MAX_WORKERS`` sets another limit (a cluster's
    scheduler bounds it otherwise). ``cpus_per_worker`` reserves CPUs per actor;
    ``blas_threads`` fixes each actor's BLAS threads; ``timeout`` bounds every wait for workers,
    ``connect_timeout`` the check that a ``host:port`` cluster answers.
    """

    label = "ray_sync"

    def __init__(self, address: str | None = None, workers: int = 2, cpus_per_worker: float = 1.0,
                 blas_threads: int = 1, timeout: float = 300.0, connect_timeout: float = 5.0) -> None:
        super().__init__(address, workers, cpus_per_worker, blas_threads, timeout, connect_timeout)

    def train_batch(self, run: Any, x: np.ndarray, y: np.ndarray) -> float:
        weights = self._weights(run)
        refs = [actor.compute.remote(weights, *self._args(run, x, y, slice(lo, hi)))
                for actor, (lo, hi) in zip(self.actors, share_ranges(len(y), self.workers))]
        results = self._get(refs, "computing gradients")  # (loss, grads, state after, size) per share
        total = float(sum(size for *_, size in results))
        grads = run.model.grads()
        for name, target in grads.items():
            target[...] = sum(part[1][name] * (part[3] / total) for part in results)
        before = run.model.state()  # what every share started from
        run.apply_update(Update(grads, state=[(before, after, size / total) for _, _, after, size in results]))
        return float(sum(loss * size for loss, *_, size in results) / total)


class RayAsync(_RayWorkers):
    """Asynchronous updating on Ray actors, with gradient-staleness compensation.

    The driver keeps up to ``workers`` batches in flight, one per actor, each computed on the
    parameters current when it was dispatched; a finished gradient is applied as soon as the driver
    collects it. Its staleness ``tau`` (updates applied since its parameters were read, plus one)
    is compensated by ``staleness``: "none", "divide" (learning rate / tau), "dc" or "dc_adaptive"
    (delay-compensated ASGD, Zheng et al., ICML 2017) — the same rules and counting as the local
    ``async`` strategy (see docs/parallel.md), applied by the trainer (``run.apply_update``), which also
    adds the worker's change of layer state (after minus before its batch), as ``async`` does.
    ``end_epoch`` waits for every batch in flight.
    """

    label = "ray_async"

    def __init__(self, address: str | None = None, workers: int = 2, cpus_per_worker: float = 1.0,
                 blas_threads: int = 1, timeout: float = 300.0, connect_timeout: float = 5.0,
                 staleness: Literal["none", "divide", "dc", "dc_adaptive"] = "divide",
                 dc_lambda: float = 0.04, dc_momentum: float = 0.95) -> None:
        super().__init__(address, workers, cpus_per_worker, blas_threads, timeout, connect_timeout)
        try:  # the rules of the local async strategy, registered by the numpyml_parallel plugin
            self.compensation = create("staleness", "compensation", rule=staleness, dc_lambda=dc_lambda,
                                       dc_momentum=dc_momentum)
        except ConfigError as exc:  # a bad dc_lambda or dc_momentum: this strategy's parameter
            raise ValueError(str(exc).removeprefix("staleness 'compensation': ")) from None
        self.staleness = staleness

    def _setup(self, run: Any) -> None:
        self.version = 0  # updates applied
        self.idle = deque(range(self.workers))
        self.in_flight: dict[Any, tuple[int, int, dict[str, np.ndarray] | None, dict[str, np.ndarray]]] = {}
        self.taus: list[int] = []

    def train_batch(self, run: Any, x: np.ndarray, y: np.ndarray) -> float | None:
        loss = None
        if not self.idle:
            loss = self._collect(run)
        worker = self.idle.popleft()
        stale = ({k: v.copy() for k, v in run.model.params().items()}
                 if self.compensation.rule in ("dc", "dc_adaptive") else None)
        before = {k: v.copy() for k, v in run.model.state().items()}  # the layer state the worker starts from
        ref = self.actors[worker].compute.remote(self._weights(run), *self._args(run, x, y))
        self.in_flight[ref] = (worker, self.version, stale, before)
        return loss

    def end_epoch(self, run: Any) -> list[float]:
        losses = []
        while self.in_flight:
            losses.append(self._collect(run))
        return losses

    def _collect(self, run: Any) -> float:
        ray = self.ray
        ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=self.timeout)
        if not ready:
            raise RunFailed(f"Ray workers did not answer within {self.timeout:g} s (raise [training.strategy] "
                            "timeout for very slow batches).")
        ref = ready[0]
        worker, version, stale, before = self.in_flight.pop(ref)
        loss, grads_in, state_in, _ = self._get([ref], f"computing gradients (worker {worker})")[0]
        self.idle.append(worker)
        tau = self.version - version + 1
        self.taus.append(tau)
        grads = run.model.grads()  # writable copies: compensation and the hook change them in place
        for name, target in grads.items():
            target[...] = grads_in[name]
        run.apply_update(Update(grads, tau, stale, [(before, state_in, 1.0)]), self.compensation)
        self.version += 1
        return float(loss)

    def teardown(self, run: Any) -> None:
        self.in_flight = {}
        super().teardown(run)

