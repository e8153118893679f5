"""Commands for plugin authors and for users vetting plugins: ``new-plugin`` and ``check``.

Light to import: the scaffolding templates and the test kit (:mod:`numpyml_kit.testing`) load only
when these commands run, so ``numpyml --help`` stays fast.
"""

from __future__ import annotations

import json
import re
import sys
import textwrap
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


def scaffold_kinds(kinds: str | list[str] | tuple[str, ...]) -> list[str]:
    """The kinds of ``--kind`` (``"activation,optimizer"`` or a list), checked, in order, without repeats."""
    given = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    chosen = list(dict.fromkeys(kind.strip() for kind in given if kind.strip()))
    if not chosen:
        raise UserError(f"--kind: name at least one kind, from {', '.join(SCAFFOLD_KINDS)}.")
    for kind in chosen:
        if kind not in SCAFFOLD_KINDS:
            raise UserError(f"--kind: cannot scaffold a '{kind}'{did_you_mean(kind, SCAFFOLD_KINDS)}; choose from "
                            f"{', '.join(SCAFFOLD_KINDS)} (several: --kind activation,optimizer).")
    return chosen


#: the kinds a scaffolded component is registered as (an activation can stand alone as a layer too)
_REGISTERED_AS = {"activation": ("activation", "layer")}


def scaffold_components(names: dict[str, str], kinds: list[str]) -> list[dict[str, str]]:
    """One example component per kind: its kind, registered name and class. With one kind the component is
    named after the plugin (``swish``, ``Swish``); with several, the kind is added (``swish_optimizer``,
    ``SwishOptimizer``) so that each name says what it is."""
    if len(kinds) == 1:
        return [{"kind": kinds[0], "component": names["component"], "class_name": names["class_name"]}]
    return [{"kind": kind, "component": f"{names['component']}_{kind}",
             "class_name": f"{names['class_name']}{kind.capitalize()}"} for kind in kinds]


def _plugin_values(names: dict[str, str], components: list[dict[str, str]]) -> dict[str, str]:
    """The placeholders of templates/plugin/: the registration hook's body, the README's lists, the tests."""
    module = names["module"]
    described = [f"the {c['kind']} '{c['component']}'" for c in components]
    summary = described[0] if len(described) == 1 else ", ".join(described[:-1]) + " and " + described[-1]
    registrations, imports, expected, rows, commands = [], [], [], [], []
    for c in components:
        reference = f"{module}.{c['kind']}:{c['class_name']}"
        for kind in _REGISTERED_AS.get(c["kind"], (c["kind"],)):
            registrations.append(f'register("{kind}", "{c["component"]}", "{reference}")')
            expected.append(f'    ("{kind}", "{c["component"]}"): {c["class_name"]},')
        imports.append(f"from {module}.{c['kind']} import {c['class_name']}")
        rows.append(f"| {c['kind']} | `{c['component']}` | `{module}/{c['kind']}.py` | "
                    f"`experiments/{c['component']}.toml` |")
        commands.append(f"uv run numpyml info {c['kind']} {c['component']}     # its parameters and documentation\n"
                        f"uv run numpyml check {c['kind']} {c['component']}    # numpyml's contract checks")
    title = textwrap.fill(f"{names['distribution']}: a numpyml plugin adding {summary}.", 110)
    return {"summary": summary, "title": title, "registrations": "\n    ".join(registrations),
            "test_imports": "\n".join(imports), "expected": "\n".join(expected), "component_rows": "\n".join(rows),
            "check_commands": "\n".join(commands),
            "first_experiment": f"experiments/{components[0]['component']}.toml"}


def scaffold_plugin(name: str, kinds: str | list[str] | tuple[str, ...] = "layer",
                    directory: Path | None = None) -> tuple[Path, list[Path]]:
    """Write a new plugin distribution with an example component of each of ``kinds`` (one module each, one
    registration hook for all); returns (its folder, the files written). Never overwrites: a folder that
    exists and is not empty is an error, and nothing is written."""
    from string import Template

    chosen = scaffold_kinds(kinds)
    names = plugin_names(name)
    target = Path(directory) if directory is not None else Path(names["distribution"])
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise UserError(
            f"{target}: already exists and is not an empty folder; new-plugin never overwrites. Choose another "
            "name or --directory, or remove it."
        )
    major, minor = (int(part) for part in __version__.split(".")[:2])  # below the next breaking release:
    below = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"  # MINOR while 0.x (docs/plugins.md)
    requirement = f"numpyml>={major}.{minor},<{below}"
    components = scaffold_components(names, chosen)
    values = {**names, "numpyml_requirement": requirement, **_plugin_values(names, components)}
    files = {
        "pyproject.toml": ("plugin/pyproject.toml.tmpl", values),
        "README.md": ("plugin/README.md.tmpl", values),
        ".gitignore": ("plugin/gitignore.tmpl", values),
        f"{names['module']}/__init__.py": ("plugin/__init__.py.tmpl", values),
        "tests/test_plugin.py": ("plugin/test_plugin.py.tmpl", values),
    }
    for component in components:
        kind, each = component["kind"], {**values, **component}
        files[f"{names['module']}/{kind}.py"] = (f"kinds/{kind}.py.tmpl", each)
        files[f"tests/test_{kind}.py"] = (f"kinds/{kind}_test.py.tmpl", each)
        files[f"experiments/{component['component']}.toml"] = (f"kinds/{kind}.toml.tmpl", each)
    rendered = {
        path: Template((_TEMPLATES / template).read_text(encoding="utf-8")).substitute(placeholders)
        for path, (template, placeholders) in files.items()
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
                             help=f"What the example components are, one or several separated by commas "
                                  f"(activation,optimizer,callback): {', '.join(SCAFFOLD_KINDS)}."),
    directory: Optional[Path] = typer.Option(None, "--directory", "-d",
                                             help="Where to create it (default ./NAME); must not exist or be empty."),
) -> None:
    """Create a ready-to-install plugin: pyproject with the numpyml entry point, a working example
    component of each kind (a module each, registered by one hook), example experiments, a README and
    tests that pass."""
    with user_errors():
        target, written = scaffold_plugin(name, kind, directory)
        components = scaffold_components(plugin_names(name), scaffold_kinds(kind))
    print(f"Created {target}/ with " + _plugin_values(plugin_names(name), components)["summary"] + ":")
    for path in written:
        print(f"  {path.relative_to(target)}")
    first, where = components[0], target.resolve()
    print(f"\nNext, from the numpyml checkout (the plugin goes into numpyml's environment; {target}/README.md):\n"
          f"  uv pip install -e {where}\n  uv run pytest {where}/tests\n"
          f"  uv run numpyml check {first['kind']} {first['component']}")


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
