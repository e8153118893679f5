"""The worker side: rebuild the network from the experiment, compute gradients on request.

:class:`SharedMemoryWorker` is the public :class:`numpyml_core.plugin_api.GradientWorker` (the one
the Ray actors use too: it rebuilds the network from the experiment through the plugin manager and
turns parameters, layer state and a batch into the loss and gradients) on the shared-memory
transport. :func:`worker_main` is the loop of a local worker process around it.

The fast path uses no pickling and no pipe: the parent writes a command into the worker's row of
a shared control block (``command``, ``rows`` = start/stop, ``scale``) and releases the worker's
``go`` semaphore; the worker computes ``scale`` times the gradient of the mean loss of rows
``start:stop`` of the batch segment, its layers reading the parameters from the parameter segment
and writing the gradients (``grad.<name>``) into its output segment themselves (see
:meth:`SharedMemoryWorker.bind`; copied where a layer does not allow it), copies the layer state
(``state.<name>``) there too, stores the loss, sets its ``flag`` to DONE and releases the shared
``done`` semaphore. (Semaphores wake a process
in about 10 us here, a pipe round trip with ``connection.wait`` takes about 60 us.)

The pipe carries only rare messages: ``("ready", pid, layout)`` at start, ``("data", handle)``
(attach a new batch segment; sent before the command that needs it) and ``("error", text)``.

A ``STOP`` command, or the parent's death (checked every second while idle), ends the loop, so a
worker never outlives the training process for long. Any exception is sent back as
``("error", traceback text)`` with the flag FAILED, and ends the worker (exit status 1).
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from typing import Any

import numpy as np

from numpyml_core.plugin_api import GradientWorker

from ._binding import Binding


class SharedMemoryWorker(GradientWorker):
    """The gradient worker (:class:`numpyml_core.plugin_api.GradientWorker`, as the Ray actors use it) on the
    shared-memory transport: :meth:`compute` reads parameters and layer state from a parameter segment
    (``param.<name>``, ``state.<name>``) and writes the gradients and the state after the batch to an output
    segment (``grad.<name>``, ``state.<name>``).

    ``input_shape`` is the per-sample input shape the training process built the model with; ``seed``
    seeds this worker's generator (used only by layers that draw randomness while training, such as
    dropout: initial values are always overwritten by the parameters sent).
    """

    binding: Binding | None = None
    _probe = False
    _source: Any = None

    def layout(self) -> dict[str, tuple[tuple[int, ...], str]]:
        """Shapes and dtypes of the parameters (``param.<name>``) and state (``state.<name>``)."""
        out = {f"param.{k}": (v.shape, v.dtype.str) for k, v in self.model.params().items()}
        out.update({f"state.{k}": (v.shape, v.dtype.str) for k, v in self.model.state().items()})
        return out

    def bind(self, params: Any, out: Any) -> None:
        """Compute on the shared arrays themselves (:class:`._binding.Binding`): each layer's
        ``params[name]`` becomes the array ``params["param.<qualified name>"]`` and its
        ``grads[name]`` the array ``out["grad.<qualified name>"]``, so :meth:`compute` copies no
        parameter and backward writes the gradients straight into ``out``.

        The binding checks that the layers read their parameters from ``params`` (or binds
        nothing). That backward writes into the arrays in ``grads`` is checked on the first
        :meth:`compute` call: the bound gradient arrays are filled with NaN first, and if one
        still holds NaN afterwards, the layers get their own gradient arrays back (copied out from
        then on) and the batch is computed again. A gradient that backward rebinds is copied out.
        """
        keys = list(self.model.params())
        self.binding = Binding(self.model, {k: params.arrays.get(f"param.{k}") for k in keys},
                               {k: out.arrays.get(f"grad.{k}") for k in keys})
        self._probe = self.binding.bind()

    @property
    def bound(self) -> set[str]:
        """Qualified names of the parameters read from shared memory in place."""
        return set(self.binding.params) if self.binding is not None and self.binding.active else set()

    @property
    def grads_bound(self) -> bool:
        """Whether backward writes the gradients straight into the output segment."""
        return self.binding is not None and self.binding.active and self.binding.grads is not None

    def compute(self, source: Any, x: np.ndarray, y: np.ndarray, out: Any, scale: float = 1.0) -> float:
        """Mean loss of ``(x, y)`` on the parameters and state in ``source`` (a parameter segment);
        ``scale`` times the gradient ends up in ``out["grad.<name>"]`` and the state after the
        forward pass in ``out["state.<name>"]``."""
        if self._source is not source:  # the views by qualified name, made once per segment
            self._source, self._views = source, ({name: source[f"param.{name}"] for name in self.model.params()},
                                                 {name: source[f"state.{name}"] for name in self.model.state()})
        params, state = self._views
        if self._probe:
            loss = self._probe_pass(x, y, params, state, scale)
        else:
            loss = self.gradients(x, y, params, state, scale)
        for name, grad in self.model.grads().items():
            target = out[f"grad.{name}"]
            if grad is not target:
                np.copyto(target, grad)
        for name, value in self.model.state().items():
            np.copyto(out[f"state.{name}"], value)
        return loss

    def _probe_pass(self, x: np.ndarray, y: np.ndarray, params: dict, state: dict, scale: float) -> float:
        """The first pass after :meth:`bind`, with the bound gradient arrays full of NaN (see there)."""
        self._probe = False
        bound = self.binding.grads
        for grad in bound.values():
            grad.fill(np.nan)
        loss = self.gradients(x, y, params, state, scale)
        grads = self.model.grads()
        if not any(grads[key] is grad and np.isnan(grad).any() for key, grad in bound.items()):
            return loss
        self.binding.release_grads()  # a layer wrote its gradient elsewhere: use the layers' own arrays
        return self.gradients(x, y, params, state, scale)  # the state is copied in again


# control block codes (one row per worker in the control segment)
IDLE, DONE, FAILED = 0, 1, 2
GRAD, STOP = 1, 2


def worker_main(index: int, conn: Any, go: Any, done: Any, control_handle: Any, parent_pid: int, spec: Any,
                input_shape: tuple[int, ...], seed: Any, params_handle: Any, output_handle: Any) -> None:
    """Entry point of a local worker process (started with the ``spawn`` method)."""
    from ._shared import SharedArrays

    # Ctrl-C reaches the whole process group; only the training process decides what happens.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    segments: list[SharedArrays] = []
    data: SharedArrays | None = None
    control: SharedArrays | None = None
    status = 0
    try:
        control = SharedArrays.attach(control_handle)
        segments.append(control)
        command, rows, flag, scale, result = (control["command"], control["rows"], control["flag"],
                                              control["scale"], control["loss"])
        seq, spin = control["seq"], float(control["spin"][0])
        seen = int(seq[index])
        clock = time.perf_counter
        worker = SharedMemoryWorker(spec, input_shape, seed)
        params = SharedArrays.attach(params_handle)
        segments.append(params)
        output = SharedArrays.attach(output_handle)
        segments.append(output)
        worker.bind(params, output)
        conn.send(("ready", os.getpid(), worker.layout()))
        while True:
            if spin:  # the next command usually follows within microseconds: watch for it awake
                deadline = clock() + spin
                while seq[index] == seen and clock() < deadline:
                    pass
            if not go.acquire(timeout=1.0):
                if os.getppid() != parent_pid:  # the training process is gone
                    break
                continue
            seen = int(seq[index])
            while conn.poll():  # a new batch segment, sent before the command that needs it
                message = conn.recv()
                if message[0] == "data":
                    if data is not None:
                        data.close()
                    data = SharedArrays.attach(message[1])
            code = int(command[index])
            if code == STOP:
                break
            if code != GRAD:
                raise RuntimeError(f"unknown command {code}")
            if data is None:
                raise RuntimeError("asked for a gradient before any batch was shared")
            start, stop = int(rows[index, 0]), int(rows[index, 1])
            loss = worker.compute(params, data["x"][start:stop], data["y"][start:stop], output, float(scale[index]))
            result[index] = loss
            flag[index] = DONE
            done.release()
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent as text
        status = 1
        try:
            text = "".join(traceback.format_exception(exc)).rstrip()
            conn.send(("error", f"{type(exc).__name__}: {exc}\n{text}"))
            if control is not None:
                control["flag"][index] = FAILED
            done.release()
        except Exception:  # noqa: BLE001 - the parent is gone: nobody to tell
            pass
    finally:
        worker = None
        for segment in [*segments, *([data] if data is not None else [])]:
            segment.close()
        try:
            conn.close()
        except OSError:
            pass
    # Leave at once: nothing of the interpreter's shutdown is needed, and skipping it keeps the
    # exit fast and quiet (no finalizers on the closed segments).
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # noqa: BLE001
            pass
    os._exit(status)
