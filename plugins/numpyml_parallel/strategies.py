"""The ``sync`` and ``async`` strategies: local worker processes, shared-memory arrays."""

from __future__ import annotations

import functools
from collections import deque
from typing import Any, Literal

import numpy as np
from threadpoolctl import ThreadpoolController

from numpyml_core.plugin_api import Update, share_ranges, validate_worker_count

from ._binding import Binding
from ._pool import WorkerError, WorkerPool, WorkerStartError
from ._shared import SharedArrays, new_token, reclaim_dead_segments
from .staleness import StalenessCompensation


@functools.cache
def _threadpools() -> ThreadpoolController:
    """threadpoolctl's view of this process's thread pools, made once (after NumPy loaded its BLAS:
    a new controller per batch would look for the libraries again, about 0.4 ms)."""
    return ThreadpoolController()


def _blas_threads(n: int) -> Any:
    """A context manager: BLAS products in the block use at most ``n`` threads (process-wide; the
    convolution layers see the limit and compute in one part)."""
    return _threadpools().limit(limits=n, user_api="blas")


def _check_common(workers: int, blas_threads: int, timeout: float) -> None:
    validate_worker_count(workers)
    if isinstance(blas_threads, bool) or not isinstance(blas_threads, int) or blas_threads < 1:
        raise ValueError(f"blas_threads must be a positive integer, got {blas_threads!r}")
    if not timeout > 0:
        raise ValueError(f"timeout must be greater than 0 seconds, got {timeout}")


class _LocalWorkers:
    """What ``sync`` and ``async`` share: shared-memory segments, the worker pool, publishing
    parameters, batch buffers and teardown.

    Segments (all named ``numpyml_<token>_<role>``): parameter segments (``param.<name>`` and
    ``state.<name>``: what workers read), one output segment per worker (``grad.<name>`` and
    ``state.<name>``: what it writes) and batch segments (``x``, ``y``), grown when a batch does
    not fit.
    """

    label = "parallel"
    shared_parameters = True  # one parameter segment for all workers (sync) or one each (async)

    @property
    def processes(self) -> int:
        """Worker processes to start (with ``local_share`` the training process is one of the workers)."""
        return self.workers - 1 if self.local_share else self.workers

    @property
    def first_index(self) -> int:
        """The number of the first worker process in messages (1 when the trainer is worker 0)."""
        return 1 if self.local_share else 0

    def __init__(self, workers: int, blas_threads: int, timeout: float, local_share: bool, spin_ms: float) -> None:
        _check_common(workers, blas_threads, timeout)
        if not spin_ms >= 0:
            raise ValueError(f"spin_ms must be at least 0, got {spin_ms}")
        self.local_share = bool(local_share)
        self.spin_ms = float(spin_ms)  # how long a waiting process busy-waits before it sleeps
        self.workers = workers
        self.blas_threads = blas_threads
        self.timeout = float(timeout)
        self.pool: WorkerPool | None = None
        self.token: str | None = None
        self._params: list[SharedArrays] = []  # per worker (the same object for all with sync)
        self._outputs: list[SharedArrays] = []
        self._data: dict[int, SharedArrays] = {}  # batch segment by slot
        self._segments: list[SharedArrays] = []
        self._generation = 0
        self._ready = False
        self._binding: Binding | None = None  # run.model computing on the shared parameters (sync)

    # -- lifecycle -------------------------------------------------------------------------------
    def setup(self, run: Any) -> None:
        if self._ready:
            raise RuntimeError(f"the {self.label} strategy is already set up (one run at a time)")
        try:
            self._setup(run)
        except BaseException:
            self.teardown(run)
            raise

    def _setup(self, run: Any) -> None:
        model = run.model
        reclaim_dead_segments()  # what runs killed with SIGKILL (the whole process group) left behind
        self.token = new_token()
        param_specs = {f"param.{k}": (v.shape, v.dtype) for k, v in model.params().items()}
        state_specs = {f"state.{k}": (v.shape, v.dtype) for k, v in model.state().items()}
        output_specs = {f"grad.{k}": (v.shape, v.dtype) for k, v in model.params().items()}
        output_specs.update(state_specs)
        count = self.processes
        self._ready = True
        if count == 0:  # sync with one worker: the training process computes every batch itself
            return
        if self.shared_parameters:
            shared = self._segment("p", {**param_specs, **state_specs})
            self._params = [shared] * count
        else:
            self._params = [self._segment(f"p{k}", {**param_specs, **state_specs}) for k in range(count)]
        self._outputs = [self._segment(f"g{k}", output_specs) for k in range(count)]
        for segment in dict.fromkeys(self._params):
            self._publish(run, segment)
        self.pool = WorkerPool(
            count, run.spec, model.input_shape, run.spec.seed,
            [s.handle for s in self._params], [s.handle for s in self._outputs], self.token,
            blas_threads=self.blas_threads, timeout=self.timeout, label=self.label, first_index=self.first_index,
            spin=self.spin_ms / 1000.0,
        )
        expected = {k: (tuple(shape), np.dtype(dtype).str) for k, (shape, dtype) in {**param_specs, **state_specs}.items()}
        for index, layout in enumerate(self.pool.layouts):
            got = {k: (tuple(shape), dtype) for k, (shape, dtype) in layout.items()}
            if got != expected:
                raise WorkerError(
                    f"parallel worker {index + self.first_index} rebuilt a different network from the experiment: "
                    f"{sorted(set(got) ^ set(expected)) or 'same names, other shapes or dtypes'}. "
                    "Are all layer plugins installed as entry points (workers load plugins themselves)?"
                )

    def teardown(self, run: Any) -> None:
        self._ready = False
        pool, self.pool = self.pool, None
        binding, self._binding = self._binding, None
        try:
            if binding is not None:  # run.model gets its own arrays back, with the trained values
                binding.release()
            if pool is not None:
                pool.shutdown()
        finally:
            segments, self._segments = self._segments, []
            self._params, self._outputs, self._data = [], [], {}
            for segment in segments:
                segment.unlink()

    # -- shared memory -----------------------------------------------------------------------------
    def _segment(self, role: str, specs: dict) -> SharedArrays:
        try:
            segment = SharedArrays.create(self.token, role, specs)
        except OSError as exc:  # /dev/shm full or limited (containers: --shm-size)
            raise WorkerStartError(
                f"cannot create the shared memory the {self.label} strategy needs ({exc.strerror or exc}"
                f"{f': {exc.filename}' if exc.filename else ''}). Free space in /dev/shm (or give a "
                "container more, e.g. docker --shm-size), use fewer [training.strategy] workers or the "
                "'serial' strategy."
            ) from None
        self._segments.append(segment)
        return segment

    @staticmethod
    def _publish(run: Any, segment: SharedArrays, params: bool = True) -> None:
        """Copy the model's current parameters (unless ``params`` is false) and state into a
        parameter segment."""
        for name, value in run.model.params().items() if params else ():
            np.copyto(segment[f"param.{name}"], value)
        for name, value in run.model.state().items():
            np.copyto(segment[f"state.{name}"], value)

    def _batch_buffer(self, slot: int, users: list[int], x: np.ndarray, y: np.ndarray, first: int = 0) -> SharedArrays:
        """The batch segment of ``slot`` holding rows ``first:`` of ``x`` and ``y`` at their own
        row numbers (created or grown as needed, and announced to the workers in ``users``)."""
        x, y = np.asarray(x), np.asarray(y)
        data = self._data.get(slot)
        fits = (
            data is not None
            and data["x"].shape[1:] == x.shape[1:] and data["x"].dtype == x.dtype and len(data["x"]) >= len(x)
            and data["y"].shape[1:] == y.shape[1:] and data["y"].dtype == y.dtype
        )
        if not fits:
            rows = max(len(x), len(data["x"]) if data is not None else 0)
            self._generation += 1
            new = self._segment(f"d{slot}v{self._generation}", {
                "x": ((rows, *x.shape[1:]), x.dtype), "y": ((rows, *y.shape[1:]), y.dtype),
            })
            for index in users:
                self.pool.send(index, ("data", new.handle))
            if data is not None:  # the workers now map the new one; drop the name of the old one
                self._segments.remove(data)
                data.unlink()
            data = self._data[slot] = new
        n = len(x)
        data["x"][first:n] = x[first:]
        data["y"][first:n] = y[first:]
        return data

    @staticmethod
    def _named(segment: SharedArrays, prefix: str, names: Any) -> dict[str, np.ndarray]:
        """The arrays ``<prefix>.<name>`` of a segment, by qualified name (``name`` in ``names``)."""
        return {name: segment[f"{prefix}.{name}"] for name in names}


class Sync(_LocalWorkers):
    """Synchronous data-parallel training: every mini-batch split across ``workers`` cores.

    Each mini-batch is split into ``workers`` nearly equal, contiguous shares (fewer when the batch
    has fewer samples). Share ``k`` of ``n_k`` samples gives the gradient of its mean loss; the
    training process sums the shares' gradients weighted by ``n_k / n``, which is the gradient of
    the whole batch's mean loss, and hands it to the trainer as one update (``run.apply_update``: the
    ``numpyml_before_update`` hook, one optimizer step on ``run.model``). Every worker reads the new
    parameters before the next batch, so with the same seed the run follows ``serial`` up to float
    rounding. The batch loss is ``sum(n_k / n * loss_k)``.

    Parameters:

    * ``workers``: how many shares each batch is split into, i.e. how many cores compute. At most
      4 per core (``os.cpu_count()``); the environment variable ``NUMPYML_MAX_WORKERS`` sets
      another limit.
    * ``local_share`` (default true): the training process computes the first share itself, on
      ``run.model``, while ``workers - 1`` worker processes compute the others (it would otherwise
      sit idle waiting for them, and on a machine with as many cores as workers a third process
      only adds switching). ``false``: ``workers`` worker processes compute every share.
    * ``blas_threads``: BLAS/OpenMP threads per worker, and for the training process while it
      computes its share (1: ``workers`` shares use ``workers`` cores without oversubscribing them).
    * ``timeout``: seconds to wait for a worker's reply before failing the run.
    * ``spin_ms``: how long a waiting process busy-waits before it sleeps: a worker for its next
      command, the training process for the workers' replies. Hand-overs then take microseconds
      instead of a sleep and a wake-up (tens of microseconds, per batch and direction). 0 disables
      it; keep it at 0 when other jobs need the cores, or with ``local_share = false`` on a machine
      with no more cores than workers.

    Worker processes start once per run (``spawn``; each rebuilds the network from the experiment
    through the plugin manager). Parameters, gradients and batches travel through shared memory;
    only tiny commands go through pipes. The layers compute on the shared arrays themselves (the
    optimizer steps the parameters the workers read, the workers' backward writes the gradients
    the training process sums) when they read ``params`` and ``grads`` at every call, as the layer
    protocol asks; that is checked at setup and on the first batch, and arrays are copied
    otherwise. A worker that raises or dies fails the run at once with its error; Ctrl-C, the end
    of the run and every error stop the workers and remove the shared memory (``teardown``). Layer
    state (batch-norm running statistics) changes by the weighted sum of the shares' changes (the
    trainer's rule, ``numpyml_core.plugin_api.Update``); each share normalizes with its own batch
    statistics.
    """

    label = "sync"
    shared_parameters = True

    def __init__(self, workers: int = 2, blas_threads: int = 1, timeout: float = 300.0,
                 local_share: bool = True, spin_ms: float = 0.5) -> None:
        super().__init__(workers, blas_threads, timeout, local_share, spin_ms)

    def _setup(self, run: Any) -> None:
        super()._setup(run)
        if self.processes:  # the optimizer then steps the parameters the workers read: no copy per batch
            shared = self._params[0]
            binding = Binding(run.model, {name: shared[f"param.{name}"] for name in run.model.params()})
            self._binding = binding if binding.bind() else None

    def train_batch(self, run: Any, x: np.ndarray, y: np.ndarray) -> float:
        if not self._ready:
            raise RuntimeError("sync.train_batch() before setup()")
        n = len(x)
        shares = [(start, stop, (stop - start) / n) for start, stop in share_ranges(n, self.workers)]
        local = shares.pop(0) if self.local_share else None  # computed here, on run.model
        if shares:  # worker process k computes shares[k]
            self._batch_buffer(0, list(range(self.processes)), x, y, first=shares[0][0])
            for k, (start, stop, weight) in enumerate(shares):
                self.pool.gradient(k, start, stop, weight)
        loss, state = 0.0, []
        if local is not None:  # meanwhile: the gradient of the local share, scaled by its weight
            start, stop, weight = local
            with _blas_threads(self.blas_threads):
                loss = weight * run.model.loss_and_gradients(x[start:stop], y[start:stop], run.cost, scale=weight)
        if shares:
            losses = self.pool.gather(range(len(shares)))
            loss += sum(weight * losses[k] for k, (_, _, weight) in enumerate(shares))
            state = self._add_shares(run, [weight for _, _, weight in shares], local)
        run.apply_update(Update(run.model.grads(), state=state))
        if self.processes:  # the step wrote the shared parameters themselves when run.model is bound
            self._publish(run, self._params[0], params=self._binding is None)
        return float(loss)

    def _add_shares(self, run: Any, weights: list[float], local: tuple | None) -> list[tuple]:
        """Add the worker processes' gradients (each already scaled by its weight) into ``run.model``'s
        (which hold the local share's, if any); return the shares' layer-state changes for the update."""
        outputs = self._outputs[:len(weights)]
        for name, grad in run.model.grads().items():
            key = f"grad.{name}"
            if local is None:  # nothing computed here: the first worker's share starts the sum
                np.copyto(grad, outputs[0][key])
            for output in outputs[0 if local is not None else 1:]:
                grad += output[key]
        names = list(run.model.state())
        before = self._named(self._params[0], "state", names)
        state = [(before, self._named(output, "state", names), weight) for output, weight in zip(outputs, weights)]
        if local is not None and names:  # run.model holds the local share's state: list it as a share too
            state.append((before, {k: v.copy() for k, v in run.model.state().items()}, local[2]))
            for name, value in run.model.state().items():
                np.copyto(value, before[name])
        return state

    def __repr__(self) -> str:
        return (f"Sync(workers={self.workers}, blas_threads={self.blas_threads}, timeout={self.timeout}, "
                f"local_share={self.local_share}, spin_ms={self.spin_ms})")


class Async(_LocalWorkers):
    """Asynchronous training on local worker processes, with gradient-staleness compensation.

    The training process owns the parameters (``run.model``). ``train_batch`` hands the batch to a
    free worker together with a copy of the current parameters, and applies every gradient as it
    arrives, as one update (``run.apply_update``: staleness compensation, the ``numpyml_before_update``
    hook, one optimizer step, the layer-state merge). When
    every worker process is busy, the training process computes the batch itself on the current
    parameters and applies its gradient at once (``local_share``, the default; otherwise it waits
    for a worker to finish). It returns the loss of a batch completed earlier (in completion
    order, one per call) or ``None``; ``end_epoch`` waits for the batches still in flight, applies
    them and returns their losses, so evaluation sees every update.

    Staleness ``tau`` of a gradient = updates applied before it minus updates applied when its
    worker read the parameters, plus one (``tau = 1``: nothing happened in between, as in
    ``serial``; with ``N`` workers taking turns, ``tau = N``). ``staleness`` chooses the rule:

    * ``"none"``: no compensation.
    * ``"divide"`` (default): learning rate divided by the staleness, ``learning_rate / tau`` (the
      original project's rule; Zhang et al., "Staleness-aware Async-SGD for Distributed Deep
      Learning", IJCAI 2016). Only that step's learning rate changes, the gradient does not.
    * ``"dc"``: delay-compensated ASGD (Zheng et al., "Asynchronous Stochastic Gradient Descent
      with Delay Compensation", ICML 2017), element-wise
      ``g <- g + dc_lambda * g * g * (w_now - w_stale)``, ``w_stale`` the parameters the worker read.
    * ``"dc_adaptive"``: the paper's adaptive variant, ``lambda = dc_lambda / sqrt(mean_square + 1e-7)``
      with ``mean_square <- dc_momentum * mean_square + (1 - dc_momentum) * g * g``.

    With ``workers = 1`` there is never another update in between (``tau = 1``): the run follows
    ``serial`` up to float rounding (with ``local_share = false``, the loading of the next batch
    overlaps the worker's gradient of the current one).

    * ``local_share`` (default true): the training process is one of the ``workers``: it starts
      ``workers - 1`` worker processes and computes a batch itself whenever they are all busy (its
      own gradients are fresh, ``tau = 1``, and the workers' count that update). On a machine with
      as many cores as workers, ``workers`` processes plus a training process that applies their
      gradients would take turns on the cores. ``false``: ``workers`` processes compute every batch.

    ``workers``: at most 4 per core (``os.cpu_count()``) unless the environment variable
    ``NUMPYML_MAX_WORKERS`` sets another limit. Other parameters as for ``sync``: ``blas_threads``
    per worker (and for the training process while it computes), ``timeout`` in seconds,
    ``spin_ms`` (keep it at 0 with ``local_share = false`` on a machine with no more cores than
    workers).
    Layer state (running statistics) changes by the worker's change (after minus before its batch)
    when its gradient is applied, the rule of every strategy (``numpyml_core.plugin_api.Update``).
    A checkpoint written mid-epoch (``every_batches``) holds the parameters without
    the batches still in flight (at most ``workers``), so resuming such a run repeats no batch but
    loses those updates; epoch-end checkpoints are complete.
    """

    label = "async"
    shared_parameters = False

    def __init__(self, workers: int = 2,
                 staleness: Literal["none", "divide", "dc", "dc_adaptive"] = "divide",
                 dc_lambda: float = 0.04, dc_momentum: float = 0.95,
                 blas_threads: int = 1, timeout: float = 300.0,
                 local_share: bool = True, spin_ms: float = 0.5) -> None:
        super().__init__(workers, blas_threads, timeout, local_share, spin_ms)
        self.staleness = staleness
        self.compensation = StalenessCompensation(staleness, dc_lambda, dc_momentum)
        self.version = 0  # gradients applied in this run
        self.staleness_counts: dict[int, int] = {}  # tau -> how many gradients had it
        self._free: list[int] = []
        self._busy: dict[int, int] = {}  # worker -> version it read
        self._losses: deque[float] = deque()

    def _setup(self, run: Any) -> None:
        super()._setup(run)
        self.version = 0
        self.staleness_counts = {}
        self._free = list(range(self.processes - 1, -1, -1))  # pop() hands out worker 0 first
        self._busy, self._losses = {}, deque()

    def train_batch(self, run: Any, x: np.ndarray, y: np.ndarray) -> float | None:
        if not self._ready:
            raise RuntimeError("async.train_batch() before setup()")
        if self._busy:  # apply what has arrived; wait for a worker only if none is free and none computes here
            self._collect(run, block=not self._free and not self.local_share)
        if self._free:
            k = self._free.pop()
            self._publish(run, self._params[k])
            self._batch_buffer(k, [k], x, y)
            self._busy[k] = self.version
            self.pool.gradient(k, 0, len(x), 1.0)
        else:  # local_share, every worker process busy: this batch is computed here, on run.model
            with _blas_threads(self.blas_threads):
                loss = run.model.loss_and_gradients(x, y, run.cost)
            # fresh: computed on the current parameters, applied before anything else (tau = 1)
            self._update(run, Update(run.model.grads()), float(loss))
        return self._losses.popleft() if self._losses else None

    def end_epoch(self, run: Any) -> list[float]:
        while self._busy:
            self._collect(run, block=True)
        losses, self._losses = list(self._losses), deque()
        return losses

    def _collect(self, run: Any, block: bool) -> None:
        """Apply every gradient that has arrived (waiting for at least one when ``block``)."""
        replies = self.pool.receive_any(sorted(self._busy), poll=not block)
        while replies:
            for k, loss in replies:
                self._apply(run, k, loss)
            replies = self.pool.receive_any(sorted(self._busy), poll=True) if self._busy else []

    def _apply(self, run: Any, k: int, loss: float) -> None:
        """Apply worker ``k``'s gradient (computed on the parameters and state it was handed)."""
        tau = self.version - self._busy.pop(k) + 1
        output, read = self._outputs[k], self._params[k]
        self._free.append(k)
        params, state = list(run.model.params()), list(run.model.state())
        self._update(run, Update(self._named(output, "grad", params), tau, self._named(read, "param", params),
                                 [(self._named(read, "state", state), self._named(output, "state", state), 1.0)]),
                     loss)

    def _update(self, run: Any, update: Update, loss: float) -> None:
        self.staleness_counts[update.tau] = self.staleness_counts.get(update.tau, 0) + 1
        run.apply_update(update, self.compensation)
        self.version += 1
        self._losses.append(loss)

    def teardown(self, run: Any) -> None:
        self._busy, self._free = {}, []
        super().teardown(run)

    def __repr__(self) -> str:
        return (f"Async(workers={self.workers}, staleness={self.staleness!r}, blas_threads={self.blas_threads}, "
                f"timeout={self.timeout}, local_share={self.local_share}, spin_ms={self.spin_ms})")
