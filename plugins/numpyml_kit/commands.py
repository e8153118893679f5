"""Commands for plugin authors and for users vetting plugins: ``new-plugin`` and ``check``.

Light to import: the scaffolding templates and the test kit (:mod:`numpyml_kit.testing`) load only
when these commands run, so ``numpyml --help`` stays fast.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from numpyml_core import __version__
from numpyml_core import PluginError, UserError
from numpyml_core.plugin_api import components_of_kind, did_you_mean, plugin_manager, user_errors

#: kinds ``numpyml new-plugin --kind`` can scaffold (a template each in templates/kinds)
SCAFFOLD_KINDS = ("layer", "activation", "cost", "optimizer", "dataset", "callback", "transform", "strategy")

_TEMPLATES = Path(__file__).parent / "templates"


# --------------------------------------------------------------------------------------------
# new-plugin
# --------------------------------------------------------------------------------------------
def plugin_names(name: str) -> dict[str, str]:
    """The names a scaffold uses, from the NAME the user gave (``numpyml-swish`` or ``swish``).

    ``distribution`` is NAME lower-cased; ``module`` the importable package (``numpyml_swish``);
    ``component`` and ``entry_point`` the registered name (``swish``: the module without a leading
    ``numpyml_``); ``class_name`` its CamelCase (``Swish``).
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9._-]*", name) or name.endswith(("-", "_", ".")):
        raise UserError(
            f"new-plugin: '{name}' is not a valid distribution name; use letters, digits and - or _, starting "
            "with a letter (for example numpyml-swish)."
        )
    distribution = name.lower()
    module = re.sub(r"[-.]+", "_", distribution)
    component = module.removeprefix("numpyml_") or module
    class_name = "".join(part.capitalize() for part in component.split("_") if part)
    return {"distribution": distribution, "module": module, "component": component, "entry_point": component,
            "class_name": class_name}


def scaffold_plugin(name: str, kind: str, directory: Path | None = None) -> tuple[Path, list[Path]]:
    """Write a new plugin distribution; returns (its folder, the files written). Never overwrites:
    a folder that exists and is not empty is an error, and nothing is written."""
    from string import Template

    if kind not in SCAFFOLD_KINDS:
        raise UserError(f"--kind: cannot scaffold a '{kind}'{did_you_mean(kind, SCAFFOLD_KINDS)}; choose one of "
                        f"{', '.join(SCAFFOLD_KINDS)}.")
    names = plugin_names(name)
    target = Path(directory) if directory is not None else Path(names["distribution"])
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(
            f"{target}: already exists and is not an empty folder; new-plugin never overwrites. Choose another "
            "name or --directory, or remove it."
        )
    major_minor = ".".join(__version__.split(".")[:2])
    values = {**names, "kind": kind, "numpyml_requirement": f"numpyml>={major_minor}"}
    component = names["component"]
    files = {
        "pyproject.toml": "plugin/pyproject.toml.tmpl",
        "README.md": "plugin/README.md.tmpl",
        ".gitignore": "plugin/gitignore.tmpl",
        f"{names['module']}/__init__.py": f"kinds/{kind}.py.tmpl",
        f"tests/test_{component}.py": f"kinds/{kind}_test.py.tmpl",
        "tests/test_plugin.py": "plugin/test_plugin.py.tmpl",
        f"experiments/{component}.toml": f"kinds/{kind}.toml.tmpl",
    }
    rendered = {
        path: Template((_TEMPLATES / template).read_text(encoding="utf-8")).substitute(values)
        for path, template in files.items()
    }
    written = []
    try:
        for path, text in rendered.items():
            destination = target / path
            destination.parent.mkdir(parents=True, exist_ok=True)
            with open(destination, "x", encoding="utf-8") as handle:  # "x": never overwrite
                handle.write(text)
            written.append(destination)
    except OSError as exc:
        raise UserError(f"{exc.filename or target}: cannot write the new plugin ({exc.strerror or exc}).") from None
    return target, written


def new_plugin(
    name: str = typer.Argument(..., help="Distribution name, e.g. numpyml-swish (the component is 'swish')."),
    kind: str = typer.Option("layer", "--kind", "-k",
                             help=f"What the example component is: {', '.join(SCAFFOLD_KINDS)}."),
    directory: Optional[Path] = typer.Option(None, "--directory", "-d",
                                             help="Where to create it (default ./NAME); must not exist or be empty."),
) -> None:
    """Create a ready-to-install plugin: pyproject with the numpyml entry point, a working example
    component, an example experiment, a README and tests that pass."""
    with user_errors():
        target, written = scaffold_plugin(name, kind, directory)
    names = plugin_names(name)
    article = "an" if kind[0] in "aeiou" else "a"
    print(f"Created {target}/ with {article} {kind} '{names['component']}':")
    for path in written:
        print(f"  {path.relative_to(target)}")
    print(f"\nNext:\n  cd {target}\n  pip install -e .            # or: uv pip install -e .\n"
          f"  numpyml list --kind {kind}\n  pytest\n  numpyml check {kind} {names['component']}")


# --------------------------------------------------------------------------------------------
# check
# --------------------------------------------------------------------------------------------
def check(
    kind: Optional[str] = typer.Argument(None, help="Only components of this kind (layer, cost, ...)."),
    name: Optional[str] = typer.Argument(None, help="Only this component."),
    data_dir: Optional[str] = typer.Option(None, "--data-dir",
                                           help="Folder holding the data sets (else NUMPYML_DATA_DIR); never downloads."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Run numpyml's contract checks on installed components (all, one kind, or one) and print
    what passes.

    Exit status 1 when a check fails, or when a plugin failed to load (checking everything or a whole
    KIND: the plugin that failed may provide that kind, so it is listed as a failed row); 0 when every
    check passes or is skipped; 2 for an unknown KIND or NAME (the message names plugins that failed to load).
    Components whose optional extra is not installed are skipped with what to install.

    Layers and activations: shapes, dtypes, params/grads, determinism and a float64 gradient check;
    costs: gradients; optimizers: descent and exact resume; datasets: splits and batches (skipped
    when the data is not there); callbacks, strategies: hooks and a tiny training run.
    """
    from numpyml_core.plugin_api import data_dir_from_env

    from .testing import CheckResult, check_component

    with user_errors():
        manager = plugin_manager()
        components = manager.registry.all()
        try:
            if kind is not None:
                components = components_of_kind(components, kind)
                if name is not None:
                    components = [manager.registry.get(kind, name)]
        except UserError as exc:
            raise type(exc)(f"{exc}{failed_plugins_note(manager.failed)}") from None
    data_dir = data_dir or data_dir_from_env()
    rows: list[tuple[Any, CheckResult]] = []
    if name is None:  # everything, or a whole kind: a plugin that failed to load may be the one providing it
        for failure in manager.failed:
            rows.append((None, CheckResult("plugin", failure.plugin, "fail",
                                           f"{failure.distribution}: failed to load: {failure.error}")))
    for component in components:
        try:
            factory = component.factory  # a lazy reference is imported here
        except PluginError as exc:
            rows.append((component, CheckResult(component.kind, component.name, "fail", str(exc))))
            continue
        rows.append((component, check_component(component.kind, component.name, factory, data_dir)))
    failed = sum(1 for _, r in rows if r.status == "fail")
    if as_json:
        print(json.dumps({"results": [
            {"kind": r.kind, "name": r.name, "status": r.status, "detail": r.detail,
             "distribution": c.distribution if c else None, "version": c.version if c else None}
            for c, r in rows
        ], "failed": failed}, indent=2))
    else:
        _print_check_table(rows)
    if failed:
        raise typer.Exit(1)


def failed_plugins_note(failed: list[Any]) -> str:
    """`` Note: plugin 'x' (dist) failed to load ...`` for an error about something not installed, or ``""``."""
    if not failed:
        return ""
    names = ", ".join(f"'{f.plugin}' ({f.distribution})" for f in failed)
    return (f" Note: plugin {names} failed to load and may be the one providing it; 'numpyml list' says why."
            if len(failed) == 1 else
            f" Note: plugins {names} failed to load and may provide it; 'numpyml list' says why.")


def _print_check_table(rows: list[tuple[Any, Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    style = {"pass": "[green]pass[/green]", "fail": "[bold red]FAIL[/bold red]", "skip": "[yellow]skip[/yellow]"}
    counts = {s: sum(1 for _, r in rows if r.status == s) for s in ("pass", "fail", "skip")}
    table = Table(title=f"numpyml check: {counts['pass']} passed, {counts['fail']} failed, {counts['skip']} skipped")
    for column in ("KIND", "NAME", "DISTRIBUTION", "RESULT", "DETAIL"):
        table.add_column(column, overflow="fold")
    for component, result in rows:  # plugin text is shown as written: "numpyml[ray]" is not markup
        dist = f"{component.distribution} {component.version}" if component is not None else ""
        table.add_row(escape(result.kind), escape(result.name), escape(dist), style[result.status],
                      escape(result.detail))
    Console().print(table)
    if counts["fail"]:
        print(f"{counts['fail']} check(s) failed: see DETAIL above.", file=sys.stderr)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app`` (the kit plugin's ``numpyml_register_commands`` hook)."""
    app.command("new-plugin")(new_plugin)
    app.command("check")(check)
