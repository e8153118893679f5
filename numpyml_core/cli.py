"""The ``numpyml`` command line: a click group whose commands all come from plugins (hook
``numpyml_register_commands(app)``; ``run``, ``resume``, ``validate``, ``eval`` from the built-in ``runner``), and
what every command uses (docs/plugins.md, "Adding commands")."""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from typing import Any, Iterator

import typer
from typer.core import TyperGroup

from .errors import PluginError, UserError, did_you_mean
from .plugins import PluginManager, get_plugin_manager, set_plugin_manager

__all__ = ["CommandGroup", "app", "components_of_kind", "error", "main", "messages_to_stderr", "plugin_manager",
           "user_errors"]

#: this invocation's ``--disable-plugin`` names and the manager loaded for them
state: dict[str, Any] = {"disable": [], "manager": None}


def error(message: str) -> None:
    """Print ``error: message`` to stderr."""
    print(f"error: {message}", file=sys.stderr)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Print what a command's user can fix as one paragraph on stderr, no traceback, and exit: with the
    ``exit_code`` of a :class:`UserError` (2), 1 for a :class:`PluginError`, 2 for no memory or a disk error."""
    try:
        yield
    except (UserError, PluginError) as exc:
        error(str(exc))
        raise typer.Exit(getattr(exc, "exit_code", 1)) from None
    except MemoryError as exc:
        error(f"out of memory ({exc or 'MemoryError'}): reduce [training] batch_size or eval_batch_size, or the size "
              "of the network.")
        raise typer.Exit(2) from None
    except OSError as exc:  # the disk, not the program: full, read-only, vanished folders
        where = f"{exc.filename}: " if exc.filename else ""
        error(f"{where}{exc.strerror or exc}. No file was left half-written (numpyml writes each file under a "
              "temporary name, then renames it); free space or choose another --output and run again (or resume).")
        raise typer.Exit(2) from None


def plugin_manager() -> PluginManager:
    """The plugin manager of this invocation: the process-wide one, or (loaded once, then made the process-wide
    one) one without the ``--disable-plugin`` plugins."""
    if state["disable"]:
        if state["manager"] is None:
            state["manager"] = PluginManager(disable=state["disable"])
            state["manager"].load_entry_points()
        set_plugin_manager(state["manager"])
    return get_plugin_manager()


def components_of_kind(components: list[Any], kind: str, prefix: str = "") -> list[Any]:
    """The ``components`` of ``kind``; none is a :class:`UserError` (after ``prefix``) naming the kinds there are."""
    kinds = sorted({c.kind for c in components})
    if kind not in kinds:
        raise UserError(f"{prefix}no installed component of kind '{kind}'{did_you_mean(kind, kinds)}; "
                        f"installed kinds: {', '.join(kinds)}.")
    return [c for c in components if c.kind == kind]


@contextlib.contextmanager
def messages_to_stderr() -> Iterator[None]:
    """While plugins load or a command runs, warnings (a :class:`PluginWarning` too) and the ``numpyml`` logger's
    notices are one line each on stderr, like a failed plugin's ``warning: ...``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger = logging.getLogger("numpyml")
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    with warnings.catch_warnings():
        warnings.simplefilter("always", UserWarning)
        warnings.showwarning = lambda message, *args, **kwargs: print(f"warning: {message}", file=sys.stderr)
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]


class CommandGroup(TyperGroup):
    """The ``numpyml`` group: the plugins' commands (``plugin_of``: command -> plugin), listed by name, loaded
    when click first asks for a command or the list, after ``--disable-plugin`` (eager) is parsed."""

    plugin_of: dict[str, str]
    manager: PluginManager | None = None

    def _load(self, ctx: typer.Context) -> PluginManager:
        if self.manager is not None:
            return self.manager
        state["disable"] = list(ctx.find_root().params.get("disable_plugin") or [])
        state["manager"] = None
        self.plugin_of = {}
        try:
            with messages_to_stderr():
                manager = plugin_manager()
            apps: dict[str, typer.Typer] = {}
            manager.register_commands(lambda plugin: apps.setdefault(plugin, typer.Typer()))
        except PluginError as exc:  # NUMPYML_STRICT_PLUGINS: a failed plugin is an error
            error(str(exc))
            raise typer.Exit(1) from None
        self.manager = manager
        for plugin, app in apps.items():
            self._add(manager, plugin, app)
        return manager

    def _add(self, manager: PluginManager, plugin: str, app: typer.Typer) -> None:
        try:
            commands = typer.main.get_group(app).commands if app.registered_commands or app.registered_groups else {}
        except Exception as exc:  # noqa: BLE001 - a plugin's malformed command fails that plugin only
            manager.fail(plugin, f"its commands cannot be built: {type(exc).__name__}: {exc}")
            return
        for name, command in commands.items():
            if name in self.commands:
                print(f"warning: numpyml: the command '{name}' of plugin '{plugin}' is ignored: plugin "
                      f"'{self.plugin_of[name]}' already provides a command of that name.", file=sys.stderr)
                continue
            self.add_command(command, name)
            self.plugin_of[name] = plugin

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        self._load(ctx)
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: typer.Context) -> list[str]:
        self._load(ctx)
        return sorted(self.commands)  # as click and simonw/llm list them: whichever plugin adds each

    def resolve_command(self, ctx: typer.Context, args: list[str]) -> Any:
        if args and not args[0].startswith("-") and self.get_command(ctx, args[0]) is None:
            message = missing_command(args[0], self._load(ctx), list(self.commands))
            if message:
                error(message)
                raise typer.Exit(1)
        return super().resolve_command(ctx, args)


def missing_command(name: str, manager: PluginManager, available: list[str]) -> str | None:
    """What to say about the unknown command ``name`` when plugins failed to load (``None``: nothing). A failed
    plugin named ``name`` provides it; otherwise any failed plugin may."""
    failed = {f.plugin: f for f in manager.failed}
    if name in failed:
        return (f"the command '{name}' comes from plugin '{name}' (distribution {failed[name].distribution}), which "
                f"failed to load: {failed[name].error}. Reinstall or fix it ('numpyml list' shows every plugin that "
                f"failed), or run without it: numpyml --disable-plugin {name} ...")
    if not failed:
        return None
    names = ", ".join(f"'{f.plugin}' ({f.distribution}: {f.error})" for f in failed.values())
    return (f"no such command '{name}'{did_you_mean(name, available)}. It may come from a plugin that failed to "
            f"load: {names}. 'numpyml list' shows every plugin that failed.")

app = typer.Typer(name="numpyml", help="Train and evaluate neural networks described in TOML files; every component "
                  "is a plugin.", add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=CommandGroup)


@app.callback()
def _main(
    disable_plugin: list[str] = typer.Option([], "--disable-plugin", metavar="NAME", is_eager=True, help="Do not load "
                                             "the plugin with this entry-point name (repeatable); its components and "
                                             "commands are gone."),
) -> None:
    del disable_plugin  # read by CommandGroup, which loads the plugins before their commands


def main() -> None:
    """The ``numpyml`` console script."""
    app()


if __name__ == "__main__":
    main()
