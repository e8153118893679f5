"""The architecture map of CONTRIBUTING.md, kept true: which way imports go between the core and the plugins.

Imports are read with ``ast`` from the source (every ``import``, at module level or inside a function),
so an import that only runs in one command is seen too.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import string
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "numpyml_core"
#: plotting and image libraries: the report plugin's business, never the core's
FORBIDDEN_IN_CORE = {"matplotlib", "PIL"}
#: what a plugin may import from numpyml (DESIGN.md: no back door for built-ins): the top-level names of
#: numpyml_core and the public plugin API. Every other numpyml_core module is private.
PUBLIC_MODULES = ("numpyml_core", "numpyml_core.plugin_api")
#: code that third-party plugin authors start from or copy: held to the same rule
THIRD_PARTY_STYLE = [ROOT / "plugins" / "numpyml_kit" / "templates", ROOT / "examples" / "numpyml-swish",
                     ROOT / "examples" / "numpyml-localsgd"]


def imports(path: Path, package: str, at_run_time: bool = False) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, a module of ``package`` (relative
    imports resolved; ``from x import y`` gives both ``x`` and ``x.y``, as y may be a module). With
    ``at_run_time``, not the imports under ``if TYPE_CHECKING:`` (for type checkers only)."""
    parts = package.split(".")  # "from . import x" in a module of ``package`` (or in its __init__) means package.x
    found = []
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If) and at_run_time
                   and isinstance(block.test, ast.Name) and block.test.id == "TYPE_CHECKING"
                   for n in ast.walk(block)}
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(parts[:len(parts) - node.level + 1] if node.level else [])
            module = ".".join(p for p in (base, node.module or "") if p)
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def plugin_packages() -> set[str]:
    """Every package under plugins/ and every module named in numpyml's ``numpyml`` entry points."""
    packages = {p.name for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file()}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    packages |= {value.split(":")[0].split(".")[0] for value in project["entry-points"]["numpyml"].values()}
    return packages


def core_modules() -> list[Path]:
    return sorted(CORE.rglob("*.py"))


def test_the_rules_see_imports_inside_functions(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from .x import y\n    import matplotlib.pyplot as plt\n")
    assert imports(module, "numpyml_core") == [(1, "os"), (4, "numpyml_core.x"), (4, "numpyml_core.x.y"),
                                              (5, "matplotlib.pyplot")]
    module.write_text("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from .x import y\n")
    assert [name for _, name in imports(module, "numpyml_core", at_run_time=True)] == ["typing", "typing.TYPE_CHECKING"]


@pytest.mark.parametrize("path", core_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_core_imports_no_plugin_and_no_plotting_or_image_library(path):
    forbidden = plugin_packages() | FORBIDDEN_IN_CORE
    bad = [f"{path.relative_to(ROOT)}:{line}: imports {name}" for line, name in imports(path, "numpyml_core")
           if name.split(".")[0] in forbidden]
    assert not bad, "numpyml_core must not import a plugin, matplotlib or PIL:\n" + "\n".join(bad)


def test_no_template_lives_in_the_core():
    templates = [p for p in CORE.rglob("*") if p.suffix == ".tmpl" or p.name == "templates"]
    assert not templates, f"templates belong to the kit plugin (plugins/numpyml_kit/templates): {templates}"


def test_core_modules_import_each_other_without_a_cycle():
    """No cycle among numpyml_core's modules, counting imports inside functions: so no function-level
    import hides one (the command line included: cli -> commands -> plugins, never back). Imports for
    type checkers only (``if TYPE_CHECKING:``, as hookspecs' ``Run``) run never and are not counted."""
    names = {p.stem for p in CORE.glob("*.py")} - {"__init__"}
    graph = {name: set() for name in names}
    for name in names:
        for _, module in imports(CORE / f"{name}.py", "numpyml_core", at_run_time=True):
            parts = module.split(".")
            if parts[0] == "numpyml_core" and len(parts) > 1 and parts[1] in names and parts[1] != name:
                graph[name].add(parts[1])

    def cycle_from(start: str, node: str, path: list[str]) -> list[str] | None:
        for nxt in sorted(graph[node]):
            if nxt == start:
                return path + [nxt]
            if nxt not in path:
                found = cycle_from(start, nxt, path + [nxt])
                if found:
                    return found
        return None

    cycles = [" -> ".join(c) for c in (cycle_from(n, n, [n]) for n in sorted(names)) if c]
    assert not cycles, "import cycles in numpyml_core:\n" + "\n".join(cycles)
    assert "cli" not in set().union(*graph.values()), "no core module imports the command line"


def public_names(module: str) -> set[str]:
    """The names a plugin may take from ``module`` (one of :data:`PUBLIC_MODULES`): its ``__all__``, and
    for the top level the public plugin API module itself."""
    names = set(importlib.import_module(module).__all__)
    return names | {"plugin_api"} if module == "numpyml_core" else names


def private_uses(source: str, filename: str, package: str) -> list[tuple[int, str]]:
    """(line, what) for every use of numpyml outside :data:`PUBLIC_MODULES` in ``source``, a module of
    ``package``: ``import``/``from ... import`` anywhere (in functions too) of a private core module or
    of a name the public modules do not export, and ``nm.name`` where ``nm`` is a public module imported
    under some name and ``name`` is not one of its public names."""
    tree = ast.parse(source, filename)
    bound: dict[str, str] = {}  # local name -> public module it stands for
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.partition(".")[0] != "numpyml_core":
                    continue
                if alias.name not in PUBLIC_MODULES:
                    found.append((node.lineno, f"imports the private module {alias.name}"))
                elif alias.asname or alias.name == "numpyml_core":
                    bound[alias.asname or alias.name] = alias.name
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[:len(parts) - node.level + 1] if node.level else [])
            module = ".".join(p for p in (base, node.module or "") if p)
            if module.partition(".")[0] != "numpyml_core":
                continue
            if module not in PUBLIC_MODULES:
                found.append((node.lineno, f"imports from the private module {module}"))
                continue
            allowed = public_names(module)
            for alias in node.names:
                if alias.name not in allowed:
                    found.append((node.lineno, f"imports {module}.{alias.name}, which is not public"))
                elif f"{module}.{alias.name}" in PUBLIC_MODULES:
                    bound[alias.asname or alias.name] = f"{module}.{alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound:
            module = bound[node.value.id]
            if node.attr not in public_names(module):
                found.append((node.lineno, f"uses {module}.{node.attr}, which is not public"))
    return sorted(found)


def test_the_rules_see_private_uses_anywhere():
    source = ("import numpyml_core as nm\nfrom numpyml_core import hookimpl, plugin_api as api\n"
              "def f():\n    from numpyml_core.trainer import build_model\n    import numpyml_core.data\n"
              "    from numpyml_core import checkpoint\n    from numpyml_core.plugin_api import build_model, Run\n"
              "    return nm.run, nm.trainer, api.share_ranges, api.blas\n")
    assert private_uses(source, "m.py", "p") == [
        (4, "imports from the private module numpyml_core.trainer"),
        (5, "imports the private module numpyml_core.data"),
        (6, "imports numpyml_core.checkpoint, which is not public"),
        (7, "imports numpyml_core.plugin_api.Run, which is not public"),
        (8, "uses numpyml_core.plugin_api.blas, which is not public"),
        (8, "uses numpyml_core.trainer, which is not public"),
    ]


def test_every_public_name_exists_and_says_what_it_is():
    for module in PUBLIC_MODULES:
        for name in sorted(public_names(module) - {"plugin_api", "__version__", "KINDS"}):
            value = getattr(importlib.import_module(module), name)
            if callable(value) or inspect.ismodule(value):
                assert (value.__doc__ or "").strip(), f"{module}.{name} has no docstring"


def test_docs_list_every_public_name():
    """docs/plugins.md's table has one row per public name (top level and plugin API), and no other."""
    text = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text.split("## The public plugin API", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(numpyml_core(?:\.plugin_api)?\.\w+)` \|", section, re.MULTILINE))
    expected = {f"{module}.{name}" for module in PUBLIC_MODULES for name in public_names(module)}
    expected -= {"numpyml_core.plugin_api"}
    assert listed == expected, (f"docs/plugins.md's table misses {sorted(expected - listed)} and lists "
                                f"{sorted(listed - expected)}, which the API does not export")


def plugin_module_files() -> list[tuple[Path, str]]:
    """(file, package) of every Python module under plugins/."""
    found = []
    for folder in sorted((ROOT / "plugins").iterdir()):
        if (folder / "__init__.py").is_file():
            for path in sorted(folder.rglob("*.py")):
                found.append((path, ".".join([folder.name, *path.relative_to(folder).parent.parts])))
    return found


@pytest.mark.parametrize("path,package", plugin_module_files(), ids=lambda v: str(v.relative_to(ROOT))
                         if isinstance(v, Path) else "")
def test_plugins_import_only_the_public_api_and_no_other_plugin(path, package):
    own = package.partition(".")[0]
    where = path.relative_to(ROOT)
    bad = [f"{where}:{line}: {what}" for line, what in private_uses(path.read_text(encoding="utf-8"), str(path),
                                                                     package)]
    bad += [f"{where}:{line}: imports the plugin {name}" for line, name in imports(path, package)
            if name.partition(".")[0] in plugin_packages() - {own}]
    assert not bad, ("a built-in plugin may import only numpyml_core's top-level names and numpyml_core.plugin_api "
                     "(docs/plugins.md), and no other plugin:\n" + "\n".join(bad))


class _Placeholders(dict):
    def __missing__(self, key: str) -> str:
        return "placeholder"


def test_templates_and_the_example_plugin_import_only_the_public_api():
    bad = []
    for folder in THIRD_PARTY_STYLE:
        for path in sorted([*folder.rglob("*.py"), *folder.rglob("*.py.tmpl")]):
            source = path.read_text(encoding="utf-8")
            if path.suffix == ".tmpl":
                source = string.Template(source).substitute(_Placeholders())
            bad += [f"{path.relative_to(ROOT)}:{line}: {what}" for line, what in private_uses(source, str(path), "p")]
    assert not bad, "\n".join(bad)


def test_the_architecture_map_names_every_core_module_and_plugin():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    missing = [p.name for p in sorted(CORE.glob("*.py")) if p.name not in section and p.name != "__init__.py"]
    missing += [name for name in sorted(plugin_packages()) if name not in section]
    assert not missing, f"CONTRIBUTING.md's architecture map does not mention: {', '.join(missing)}"
