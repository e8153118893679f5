"""Hook specifications (docs/plugins.md): implementations are marked :data:`numpyml_core.hookimpl` and take any
subset of the arguments. The process-wide manager calls :data:`REGISTRATION_HOOKS` on plugin modules; each run's
own manager (``run.hooks``), :data:`TRAINING_HOOKS` on that run's callbacks (never on a plugin module)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import pluggy

if TYPE_CHECKING:
    from .trainer import Run

hookspec = pluggy.HookspecMarker("numpyml")


@hookspec
def numpyml_register_components(register: Callable[..., None]) -> None:
    """Register this plugin's components: ``register(kind, name, factory)``, ``factory`` a class or function
    whose keyword arguments are the parameters, or a lazy ``"package.module:attribute"`` reference to one."""


@hookspec
def numpyml_register_commands(app: Any) -> None:
    """Add ``numpyml`` commands with ``@app.command()`` on ``app`` (a :class:`typer.Typer`); called on every
    invocation, so import heavy modules inside the commands. Helpers: :mod:`numpyml_core.plugin_api`."""


@hookspec
def numpyml_on_run_start(run: Run) -> None:
    """The run is set up (model built, data loaded, strategy started); no batch has been trained. ``run``'s
    public attributes are listed in docs/plugins.md ("Compatibility promise")."""


@hookspec
def numpyml_on_run_end(run: Run, summary: dict) -> None:
    """Training finished normally; ``summary`` holds the final figures (written to summary.json)."""


@hookspec
def numpyml_on_epoch_start(run: Run, epoch: int) -> None:
    """Epoch ``epoch`` (from 1) starts, or continues after a mid-epoch resume (``run.batch`` batches done)."""


@hookspec
def numpyml_on_epoch_end(run: Run, epoch: int, metrics: dict) -> None:
    """Epoch ``epoch`` is trained and evaluated; ``metrics`` is its metrics.csv row. Set
    ``run.control.should_stop = True`` to end training after it."""


@hookspec
def numpyml_on_batch_start(run: Run, epoch: int, batch: int) -> None:
    """Batch ``batch`` (from 0 within the epoch) is about to be trained. Keep it cheap."""


@hookspec
def numpyml_on_batch_end(run: Run, epoch: int, batch: int, loss: float | None) -> None:
    """Batch ``batch`` was trained; ``loss`` is its mean loss (``None``: an asynchronous strategy has none yet)."""


@hookspec
def numpyml_on_evaluate_end(run: Run, epoch: int, split: str, metrics: dict) -> None:
    """Split ``split`` was evaluated after epoch ``epoch``: ``metrics`` has ``loss``, ``accuracy``."""


@hookspec
def numpyml_before_update(run: Run, params: dict, grads: dict) -> None:
    """The optimizer is about to apply ``grads`` (keyed like ``params``: ``"0.weight"``), called by
    ``run.apply_update`` for every strategy; a callback may modify them in place (clipping, noise) but must not
    rebind arrays."""


@hookspec
def numpyml_on_checkpoint_save(run: Run, state: dict) -> None:
    """A checkpoint is being written: add JSON-serialisable entries to ``state`` under your own key."""


@hookspec
def numpyml_on_checkpoint_load(run: Run, state: dict) -> None:
    """A checkpoint was read: restore what ``numpyml_on_checkpoint_save`` stored."""


@hookspec
def numpyml_on_error(run: Run, error: BaseException) -> None:
    """Training stopped with ``error`` (including ``KeyboardInterrupt``). Release resources here."""


#: the hooks of the process-wide plugin manager, called on plugin modules
REGISTRATION_HOOKS = ("numpyml_register_components", "numpyml_register_commands")

#: the hooks of a run's own manager (``run.hook_manager``), called on that run's callbacks only
TRAINING_HOOKS = tuple(name for name in dir() if name.startswith("numpyml_") and name not in REGISTRATION_HOOKS)
