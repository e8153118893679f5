"""Hook specifications: where plugins and callbacks plug in.

Every hook is documented here, where it is specified (the pytest style). Implementations are plain
functions or methods decorated with :data:`numpyml_core.hookimpl`; they may accept any subset of
the arguments named in the specification.

Three families, dispatched by two kinds of pluggy manager:

* ``numpyml_register_components`` is called once per installed plugin module when the plugin
  manager loads the ``numpyml`` entry-point group.
* ``numpyml_register_commands`` is called by the ``numpyml`` command line, once per plugin module,
  to add the plugin's commands (``report``, ``new-plugin`` ... come from built-in plugins this way).
* ``numpyml_on_*`` / ``numpyml_before_update`` are training hooks, called by the trainer on the
  callbacks registered for one run (the experiment's ``[[callbacks]]``, the defaults the API and the
  CLI add, and the ``callbacks=`` given to :func:`numpyml_core.run`).

The first two (:data:`REGISTRATION_HOOKS`) are the only hooks of the process-wide plugin manager,
which holds the plugin modules. Each run has a pluggy manager of its own (``run.hook_manager``,
called through ``run.hooks``) with the training hooks (:data:`TRAINING_HOOKS`) and that run's
callbacks only, so two runs in one process (a notebook, a test, a sweep) never see each other's
callbacks, and installing a plugin never adds a callback to a run by itself: a training hook
defined at module level in a plugin module is ignored, with one
:class:`numpyml_core.PluginWarning` naming the plugin. Write a callback class instead, register it
(``register("callback", "my_callback", MyCallback)``) and select it in the experiment
(``[[callbacks]]`` ``type = "my_callback"``).
"""

from __future__ import annotations

from typing import Any, Callable

import pluggy

hookspec = pluggy.HookspecMarker("numpyml")


@hookspec
def numpyml_register_components(register: Callable[..., None]) -> None:
    """Register this plugin's components.

    ``register(kind, name, factory)``: ``kind`` is one of :data:`numpyml_core.protocols.KINDS` (or
    a new kind), ``name`` the name used in experiment files, ``factory`` a class or function whose
    keyword arguments (with type hints and defaults) are the component's parameters. A (kind,
    name) pair registered by two plugins is an error naming both distributions.

    ``factory`` may also be a lazy reference, the string ``"package.module:attribute"``: the
    module is located at registration (a missing module fails the plugin) but imported only when
    the component is first used, so ``numpyml list`` and ``--help`` stay fast however many plugins
    are installed. The built-in plugins register this way; an import error then surfaces when the
    component is used (or in ``numpyml check``), naming the plugin and its distribution.
    """


@hookspec
def numpyml_register_commands(app: Any) -> None:
    """Add this plugin's commands to the ``numpyml`` command line (simonw/llm's ``register_commands``).

    ``app`` is a :class:`typer.Typer` of this plugin's own: decorate functions with
    ``@app.command()`` (or ``app.add_typer(...)`` for a group). The command line calls this hook
    when it starts, after loading the plugins, and adds the commands next to its own::

        @hookimpl
        def numpyml_register_commands(app):
            @app.command()
            def hello(name: str = "world") -> None:
                \"\"\"Say hello.\"\"\"
                print(f"hello {name}")

    A command named like one of the core's or of another plugin is ignored with a warning naming
    both; a hook that raises fails its plugin (reported like a failed import). ``numpyml
    --disable-plugin NAME`` removes the plugin's commands, and a command whose plugin failed to load
    says so. Keep the hook cheap (it runs for every ``numpyml`` invocation, ``--help`` included):
    import heavy modules inside the command functions. Helpers for commands (errors printed as one
    paragraph, the plugin manager honouring ``--disable-plugin``) are in
    :mod:`numpyml_core.plugin_api` (``user_errors``, ``plugin_manager``, ``components_of_kind``). A plugin with this hook needs no component.
    """


@hookspec
def numpyml_on_run_start(run: Any) -> None:
    """The run is set up (model built, data loaded, strategy started); no batch has been trained.

    ``run`` is the :class:`numpyml_core.trainer.Run`: ``run.spec``, ``run.model``,
    ``run.optimizer``, ``run.splits``, ``run.folder`` (the :class:`numpyml_core.RunFolder` the run
    writes, or ``None``; its path is ``run.output_dir``), ``run.control``.
    """


@hookspec
def numpyml_on_run_end(run: Any, summary: dict) -> None:
    """Training finished normally; ``summary`` holds the final figures (written to summary.json)."""


@hookspec
def numpyml_on_epoch_start(run: Any, epoch: int) -> None:
    """Epoch ``epoch`` (counted from 1) is about to start, or to continue when a run resumes from
    a checkpoint written mid-epoch (then ``run.batch`` batches of it are already done)."""


@hookspec
def numpyml_on_epoch_end(run: Any, epoch: int, metrics: dict) -> None:
    """Epoch ``epoch`` is trained and evaluated.

    ``metrics`` is the row of metrics.csv: ``epoch``, ``train_loss``, ``<split>_loss``,
    ``<split>_accuracy`` for every evaluated split, ``seconds``. Set
    ``run.control.should_stop = True`` to end training after this epoch.
    """


@hookspec
def numpyml_on_batch_start(run: Any, epoch: int, batch: int) -> None:
    """Batch ``batch`` (counted from 0 within the epoch) is about to be trained. Keep it cheap."""


@hookspec
def numpyml_on_batch_end(run: Any, epoch: int, batch: int, loss: float | None) -> None:
    """Batch ``batch`` was trained; ``loss`` is its mean loss (``None`` when an asynchronous
    strategy has no completed batch to report yet). Keep it cheap: called per batch."""


@hookspec
def numpyml_on_evaluate_end(run: Any, epoch: int, split: str, metrics: dict) -> None:
    """Split ``split`` was evaluated after epoch ``epoch``: ``metrics`` has ``loss``, ``accuracy``."""


@hookspec
def numpyml_before_update(run: Any, params: dict, grads: dict) -> None:
    """Gradients for one step are ready and the optimizer is about to apply them.

    ``params`` and ``grads`` are flat dicts keyed by qualified names (``"0.weight"``). A callback
    may modify ``grads`` in place (clipping, noise) but must not rebind arrays.
    """


@hookspec
def numpyml_on_checkpoint_save(run: Any, state: dict) -> None:
    """A checkpoint is being written: add JSON-serialisable entries to ``state`` under your own key."""


@hookspec
def numpyml_on_checkpoint_load(run: Any, state: dict) -> None:
    """A checkpoint was read: restore what ``numpyml_on_checkpoint_save`` stored."""


@hookspec
def numpyml_on_error(run: Any, error: BaseException) -> None:
    """Training stopped with ``error`` (including ``KeyboardInterrupt``). Release resources here."""


#: the hooks of the process-wide plugin manager, called on plugin modules
REGISTRATION_HOOKS = ("numpyml_register_components", "numpyml_register_commands")

#: the hooks of a run's own manager (``run.hook_manager``), called on that run's callbacks only
TRAINING_HOOKS = (
    "numpyml_on_run_start",
    "numpyml_on_run_end",
    "numpyml_on_epoch_start",
    "numpyml_on_epoch_end",
    "numpyml_on_batch_start",
    "numpyml_on_batch_end",
    "numpyml_on_evaluate_end",
    "numpyml_before_update",
    "numpyml_on_checkpoint_save",
    "numpyml_on_checkpoint_load",
    "numpyml_on_error",
)
