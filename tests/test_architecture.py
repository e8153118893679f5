"""The architecture map of CONTRIBUTING.md, kept true: which way imports go between the core and the plugins.

Imports are read with ``ast`` from the source (every ``import``, at module level or inside a function),
so an import that only runs in one command is seen too.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "numpyml_core"
#: plotting and image libraries: the report plugin's business, never the core's
FORBIDDEN_IN_CORE = {"matplotlib", "PIL"}
#: plugin -> plugin imports that predate the rule (DESIGN.md: a built-in never imports another plugin)
KNOWN_CROSS_PLUGIN = {("numpyml_ray", "numpyml_parallel")}  # ray reuses the parallel plugin's staleness rule


def imports(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, a module of ``package`` (relative
    imports resolved; ``from x import y`` gives both ``x`` and ``x.y``, as y may be a module)."""
    parts = package.split(".")  # "from . import x" in a module of ``package`` (or in its __init__) means package.x
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
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
    import hides one (the command line included: cli -> commands -> plugins, never back)."""
    names = {p.stem for p in CORE.glob("*.py")} - {"__init__"}
    graph = {name: set() for name in names}
    for name in names:
        for _, module in imports(CORE / f"{name}.py", "numpyml_core"):
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


def test_plugins_import_the_public_core_and_no_other_plugin():
    packages = plugin_packages()
    bad = []
    for folder in sorted((ROOT / "plugins").iterdir()):
        if not (folder / "__init__.py").is_file():
            continue
        for path in sorted(folder.rglob("*.py")):
            package = ".".join([folder.name, *path.relative_to(folder).parent.parts])
            for line, name in imports(path, package):
                top, _, rest = name.partition(".")
                where = f"{path.relative_to(ROOT)}:{line}"
                if top in packages and top != folder.name and (folder.name, top) not in KNOWN_CROSS_PLUGIN:
                    bad.append(f"{where}: imports the plugin {name}")
                if top == "numpyml_core" and (rest.startswith("_") and not rest.startswith("__") or rest == "cli"):
                    bad.append(f"{where}: imports the private {name}")
    assert not bad, "\n".join(bad)


def test_the_architecture_map_names_every_core_module_and_plugin():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    missing = [p.name for p in sorted(CORE.glob("*.py")) if p.name not in section and p.name != "__init__.py"]
    missing += [name for name in sorted(plugin_packages()) if name not in section]
    assert not missing, f"CONTRIBUTING.md's architecture map does not mention: {', '.join(missing)}"
