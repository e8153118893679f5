"""The ``numpyml list`` and ``numpyml info`` commands: what is installed, and what a component takes."""

from __future__ import annotations

import json
from typing import Any, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from numpyml_core.plugin_api import components_of_kind, describe_params, plugin_manager, user_errors


def _table(console: Console, rows: list[tuple[Any, ...]], columns: tuple[str, ...], no_wrap: str = "",
           **options: Any) -> None:
    """Print ``rows`` as a rich table, every cell literally (``numpyml[ray]`` is not markup) and folded, never cut."""
    table = Table(**options)
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column == no_wrap)
    for row in rows:
        table.add_row(*(escape(str(cell)) for cell in row))
    console.print(table)


def list_components(
    kind: Optional[str] = typer.Option(None, "--kind", help="Only this kind (layer, optimizer, ...)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Every installed component, with the plugin and distribution that provides it."""
    with user_errors():
        manager = plugin_manager()
        components = manager.registry.all()
        if kind is not None:
            components = components_of_kind(components, kind, prefix="--kind: ")
    rows = [(c.kind, c.name, c.plugin, c.distribution, c.version) for c in components]
    failed = [(f.plugin, f.distribution, f.error) for f in manager.failed]
    if as_json:
        keys = ("kind", "name", "plugin", "distribution", "version")
        print(json.dumps({"components": [dict(zip(keys, row)) for row in rows],
                          "failed": [dict(zip(("plugin", "distribution", "error"), row)) for row in failed]}, indent=2))
        return
    console = Console()
    # a name stays on one line when the terminal leaves the other columns about 40 characters, else it folds
    widest = max((len(c.name) for c in components), default=4)
    _table(console, rows, ("KIND", "NAME", "PLUGIN", "DISTRIBUTION", "VERSION"),
           "NAME" if widest + 40 <= console.width else "", title=f"numpyml components ({len(components)})")
    if failed:
        _table(console, failed, ("PLUGIN", "DISTRIBUTION", "ERROR"), title="plugins that failed to load",
               title_style="bold red")


def info(kind: str = typer.Argument(..., help="Component kind."),
         name: str = typer.Argument(..., help="Component name.")) -> None:
    """A component's parameters (name, type, default) and documentation.

    Exit status 2 for an unknown KIND or NAME, 1 when the component's plugin module cannot be imported.
    """
    with user_errors():
        component = plugin_manager().registry.get(kind, name)
        rows = describe_params(component.factory)  # a lazy reference is imported here: its failure is one line
        doc = component.doc
    console = Console()
    console.print(f"[bold]{escape(kind)} {escape(name)}[/bold]  (plugin {escape(component.plugin)}, "
                  f"{escape(component.distribution)} {escape(component.version)})")
    _table(console, rows, ("PARAMETER", "TYPE", "DEFAULT"))
    if doc:
        console.print(doc, markup=False, highlight=False, soft_wrap=True)
