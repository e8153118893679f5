"""Local worker processes: start once, exchange small messages, notice failures, shut down.

A :class:`WorkerPool` starts ``count`` processes with the ``spawn`` method (a fresh interpreter:
no inherited BLAS thread pools or locks), each running :func:`._worker.worker_main`. Before the
processes start, the BLAS/OpenMP thread variables are set to ``blas_threads`` in the environment
they inherit (so NumPy's BLAS reads them when the worker imports it) and SIGINT is ignored for
them (a terminal's Ctrl-C goes to the whole process group: only the training process reacts, and
then shuts the workers down).

Commands and completions go through a shared control block and POSIX semaphores (see
:mod:`._worker`). Every wait for a completion wakes up every ``poll_interval`` to check that the
workers it waits for are alive, and has a deadline, so a worker that raises, dies or hangs makes the training process raise :class:`WorkerError` (with the
worker's traceback when it sent one) instead of waiting forever. :meth:`WorkerPool.shutdown` is
idempotent and also runs from a ``weakref.finalize`` safety net: ask to stop, wait briefly, then
terminate and finally kill.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
import weakref
from multiprocessing.connection import wait
from typing import Any, Iterable

import numpy as np

from numpyml_core import RunFailed, UserError

from ._shared import Semaphore, SharedArrays
from ._worker import DONE, FAILED, GRAD, IDLE, STOP, worker_main

#: environment variables read by the common BLAS and OpenMP runtimes at import time
BLAS_THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


class WorkerError(RunFailed):
    """A worker process failed (raised, died or stopped answering); the message says which and why.
    A :class:`numpyml_core.RunFailed`: the CLI prints it and exits with status 1, no traceback."""


class WorkerStartError(UserError):
    """A worker process (or what it needs: a pipe, a semaphore, shared memory) could not be created:
    the machine is out of processes, memory or file descriptors. The workers already started are
    stopped and the shared memory removed; the CLI prints the message and exits with status 2."""


def _start_failed(index: int, started: int, count: int, exc: BaseException) -> WorkerStartError:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return WorkerStartError(
        f"could not start parallel worker {index} ({started} of {count} worker processes had started): "
        f"{reason}. The machine is out of processes, memory or open files; the started workers were "
        "stopped and their shared memory removed. Use fewer [training.strategy] workers, or the 'serial' "
        "strategy."
    )


def _stop_processes(processes: list[Any], connections: list[Any], go: list[Any], control: SharedArrays,
                    grace: float) -> None:
    if control.arrays:
        control["command"][:] = STOP
    for semaphore in go[:len(processes)]:
        semaphore.release()
    deadline = time.monotonic() + grace
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        if process.is_alive():
            process.terminate()
            process.join(1.0)
        if process.is_alive():
            process.kill()
            process.join(1.0)
    for conn in connections:
        try:
            conn.close()
        except OSError:
            pass
    for process in processes:
        try:
            process.close()
        except ValueError:  # still running after kill: nothing more we can do
            pass
    control.unlink()
    for semaphore in go:
        semaphore.unlink()


class WorkerPool:
    """``count`` local gradient workers (see the module docstring).

    ``params_handles[k]`` and ``output_handles[k]`` are the shared-memory handles worker ``k``
    reads parameters from and writes gradients to; ``token`` names the pool's control segment.
    ``timeout`` bounds every wait for a reply (seconds); ``label`` names the processes
    (``numpyml-<label>-<k>``).
    """

    #: how often a waiting training process checks that the workers it waits for are alive
    poll_interval = 0.2

    def __init__(self, count: int, spec: Any, input_shape: tuple[int, ...], seed: int,
                 params_handles: list[Any], output_handles: list[Any], token: str, blas_threads: int = 1,
                 timeout: float = 300.0, label: str = "worker", first_index: int = 0, spin: float = 0.0):
        self.count = count
        self.first_index = first_index  # how messages number the workers (1 when the trainer is worker 0)
        self.timeout = float(timeout)
        self.pids: list[int] = []
        self.layouts: list[dict] = []
        self._processes: list[Any] = []
        self._connections: list[Any] = []
        self._closed = False
        self.control = SharedArrays.create(token, "c", {
            "command": ((count,), np.int64), "rows": ((count, 2), np.int64), "flag": ((count,), np.int64),
            "seq": ((count,), np.int64), "spin": ((1,), np.float64),
            "scale": ((count,), np.float64), "loss": ((count,), np.float64),
        })
        self.spin = float(spin)
        self.control["spin"][0] = self.spin
        context = multiprocessing.get_context("spawn")
        self._go: list[Semaphore] = []
        try:
            for index in range(count):
                self._go.append(Semaphore(token, f"s{index}"))
            self._done = Semaphore(token, "sd")
            self._go.append(self._done)  # the last one: _stop_processes unlinks them all
        except (OSError, MemoryError) as exc:
            for semaphore in self._go:
                semaphore.unlink()
            self.control.unlink()
            raise _start_failed(first_index, 0, count, exc) from None
        self._finalizer = weakref.finalize(self, _stop_processes, self._processes, self._connections,
                                           self._go, self.control, 2.0)
        try:
            self._start(context, spec, input_shape, seed, params_handles, output_handles, blas_threads, label)
        except BaseException:
            self.shutdown(grace=1.0)
            raise

    def _start(self, context: Any, spec: Any, input_shape: tuple[int, ...], seed: int, params_handles: list[Any],
               output_handles: list[Any], blas_threads: int, label: str) -> None:
        with _worker_environment(blas_threads):
            for index in range(self.count):
                try:  # out of processes (EAGAIN), memory or file descriptors: stop cleanly, say so
                    parent_end, child_end = context.Pipe(duplex=True)
                    process = context.Process(
                        target=worker_main, name=f"numpyml-{label}-{index + self.first_index}", daemon=True,
                        args=(index, child_end, self._go[index], self._done, self.control.handle, os.getpid(),
                              spec, tuple(input_shape), [seed, 1 + index], params_handles[index],
                              output_handles[index]),
                    )
                    self._connections.append(parent_end)
                    try:
                        process.start()
                    finally:
                        child_end.close()
                except (OSError, MemoryError) as exc:
                    raise _start_failed(index + self.first_index, index, self.count, exc) from None
                self._processes.append(process)
        deadline = time.monotonic() + max(self.timeout, 120.0)
        for index in range(self.count):
            reply = self._message(index, deadline)
            if reply[0] == "error":
                self._fail(index, reply[1])
            if reply[0] != "ready":
                raise WorkerError(f"{self._name(index)} sent {reply[0]!r} instead of 'ready'")
            self.pids.append(reply[1])
            self.layouts.append(reply[2])

    # -- slow path: pipe messages ------------------------------------------------------------------
    def _message(self, index: int, deadline: float) -> tuple:
        conn, process = self._connections[index], self._processes[index]
        while True:
            ready = wait([conn, process.sentinel], min(self.poll_interval * 5, max(0.0, deadline - time.monotonic())))
            if conn in ready or conn.poll():
                try:
                    return conn.recv()
                except (EOFError, OSError):
                    self._raise_for(index, "closed its connection")
            if ready:
                self._raise_for(index, "died")
            if time.monotonic() >= deadline:
                raise WorkerError(f"{self._name(index)} did not start within {max(self.timeout, 120.0):g} s")

    def send(self, index: int, message: tuple) -> None:
        """A rare message through the pipe (read by the worker before its next command)."""
        try:
            self._connections[index].send(message)
        except (OSError, ValueError) as exc:
            self._raise_for(index, f"cannot be reached ({exc})")

    # -- fast path: control block and semaphores ---------------------------------------------------
    def gradient(self, index: int, start: int, stop: int, scale: float = 1.0) -> None:
        """Ask worker ``index`` for ``scale`` times the gradient of batch rows ``start:stop``."""
        control = self.control
        control["rows"][index, 0] = start
        control["rows"][index, 1] = stop
        control["scale"][index] = scale
        control["flag"][index] = IDLE
        control["command"][index] = GRAD
        control["seq"][index] += 1  # a worker that is still spinning sees this at once
        self._go[index].release()

    def receive_any(self, indices: Iterable[int], poll: bool = False) -> list[tuple[int, float]]:
        """Wait until one of the workers ``indices`` (each asked for one gradient) is done; return
        ``[(index, loss)]`` for it. With ``poll``, do not wait: return ``[]`` if none is done.

        Raises :class:`WorkerError` with the worker's traceback if it failed, if one of them died,
        or if none finished within the pool's ``timeout``.
        """
        indices = list(indices)
        if poll:
            if not self._done.acquire(False):
                return []
        # a flag seen while spinning: the worker releases the semaphore right after setting it, unless it is
        # killed in between, so even then the wait below (which notices a dead worker) takes over
        elif not (self.spin and self._spin_until_done(indices) and self._done.acquire(timeout=self.poll_interval)):
            deadline = time.monotonic() + self.timeout
            while not self._done.acquire(timeout=self.poll_interval):
                for index in indices:
                    if not self._processes[index].is_alive():
                        self._raise_for(index, "died")
                if time.monotonic() >= deadline:
                    names = ", ".join(str(i + self.first_index) for i in indices)
                    raise WorkerError(
                        f"parallel worker(s) {names} did not answer within {self.timeout:g} s; stopping the run "
                        "(raise [training.strategy] timeout if batches really take this long)"
                    )
        flags = self.control["flag"]
        for index in indices:
            if flags[index] == FAILED:
                self._raise_for(index, "failed")
        for index in indices:
            if flags[index] == DONE:
                flags[index] = IDLE
                return [(index, float(self.control["loss"][index]))]
        raise WorkerError(f"a completion was signalled but none of the workers {indices} reports one")

    def _spin_until_done(self, indices: list[int]) -> bool:
        """Busy-wait up to ``spin`` seconds for one of ``indices`` to set its flag (no sleep and
        wake-up when a reply is due within microseconds); ``False`` if none did."""
        flags = self.control["flag"]
        clock = time.perf_counter
        deadline = clock() + self.spin
        while True:
            for index in indices:
                if flags[index] != IDLE:
                    return True
            if clock() >= deadline:
                return False

    def gather(self, indices: Iterable[int]) -> dict[int, float]:
        """Wait for every worker in ``indices``; return their losses by index."""
        pending = set(indices)
        losses: dict[int, float] = {}
        while pending:
            for index, loss in self.receive_any(sorted(pending)):
                losses[index] = loss
                pending.discard(index)
        return losses

    # -- failures ----------------------------------------------------------------------------------
    def _fail(self, index: int, text: str) -> None:
        raise WorkerError(f"{self._name(index)} (pid {self._pid(index)}) failed:\n{text}")

    def _name(self, index: int) -> str:
        return f"parallel worker {index + self.first_index}"

    def _pid(self, index: int) -> Any:
        return self.pids[index] if index < len(self.pids) else self._processes[index].pid

    def _raise_for(self, index: int, what: str) -> None:
        conn = self._connections[index]
        try:  # a failing worker sends its traceback before it exits
            while conn.poll(1.0):
                message = conn.recv()
                if message[0] == "error":
                    self._fail(index, message[1])
        except (EOFError, OSError):
            pass
        process = self._processes[index]
        process.join(0.5)
        code = process.exitcode
        status = "" if code is None else (f" with exit status {code}" if code >= 0 else
                                          f" (killed by signal {signal.Signals(-code).name})")
        raise WorkerError(f"{self._name(index)} (pid {self._pid(index)}) {what}{status}")

    def alive(self) -> list[bool]:
        return [process.is_alive() for process in self._processes]

    # -- shutdown ----------------------------------------------------------------------------------
    def shutdown(self, grace: float = 5.0) -> None:
        """Stop every worker (ask, wait up to ``grace`` seconds, terminate, kill) and remove the
        control segment. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._finalizer.detach()
        _stop_processes(self._processes, self._connections, self._go, self.control, grace)


class _worker_environment:
    """Within: the BLAS thread variables set for new processes, SIGINT ignored for them."""

    def __init__(self, blas_threads: int):
        self.blas_threads = str(int(blas_threads))
        self.saved: dict[str, str | None] = {}
        self.handler: Any = None

    def __enter__(self) -> None:
        for name in BLAS_THREAD_VARIABLES:
            self.saved[name] = os.environ.get(name)
            os.environ[name] = self.blas_threads
        if threading.current_thread() is threading.main_thread():
            # an ignored signal stays ignored across exec, so workers ignore Ctrl-C from birth
            self.handler = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc: Any) -> None:
        for name, value in self.saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if self.handler is not None:
            signal.signal(signal.SIGINT, self.handler)
