"""RunFolder is the one owner of the run folder's format: no other module spells its files' names."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from numpyml_core import RunFolder, UserError

ROOT = Path(__file__).resolve().parent.parent
#: the run folder's own names, as RunFolder spells them
NAMES = {"config.toml", "metrics.csv", "summary.json", "model.safetensors", "checkpoints", "last.safetensors",
         "best.safetensors", ".numpyml.lock", "report.html"}
#: where the names may be spelt: RunFolder itself, and nowhere else (numpyml_core, plugins, benchmarks, examples)
ALLOWED = {"numpyml_core/runfolder.py"}


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def spelt_names(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string constant in ``source`` (docstrings aside) that is one of the run folder's
    names or a path ending in one: code that builds a run file's path itself. Prose that mentions a name (an
    error message, help text) is not code that depends on it, and is not reported."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            text = node.value.strip()
            if text in NAMES or any(text.endswith("/" + name) for name in NAMES):
                found.append((node.lineno, node.value))
    return found


def code_files() -> list[Path]:
    files = []
    for folder in ("numpyml_core", "plugins", "benchmarks", "examples"):
        files += [path for path in (ROOT / folder).rglob("*.py") if "tests" not in path.relative_to(ROOT).parts]
    return sorted(files)


def test_the_checker_finds_what_it_looks_for():
    code = 'x = path / "checkpoints" / "last.safetensors"\ny = f"{d}/summary.json"\nz = "see config.toml."\n'
    assert sorted(spelt_names(code)) == [(1, "checkpoints"), (1, "last.safetensors"), (2, "/summary.json")]
    assert spelt_names('"""Writes metrics.csv."""\n') == []


def test_no_module_but_runfolder_spells_the_run_files():
    offenders = []
    for path in code_files():
        relative = path.relative_to(ROOT).as_posix()
        if relative in ALLOWED:
            continue
        offenders += [f"{relative}:{line}: {text!r}" for line, text in spelt_names(path.read_text(encoding="utf-8"))]
    assert len(code_files()) > 50
    assert offenders == [], "use RunFolder's paths and readers/writers instead:\n" + "\n".join(offenders)


def test_paths_and_files(tmp_path):
    folder = RunFolder(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in (
        folder.config_path, folder.metrics_path(), folder.summary_path, folder.model_path,
        folder.checkpoint_path("last"), folder.checkpoint_path("best"), folder.lock_path)] == [
        "config.toml", "metrics.csv", "summary.json", "model.safetensors", "checkpoints/last.safetensors",
        "checkpoints/best.safetensors", ".numpyml.lock"]
    with pytest.raises(ValueError, match="'last' or 'best'"):
        folder.checkpoint_path("first")
    assert not folder.is_run()
    folder.write_config('name = "x"\n')
    assert folder.is_run() and folder.read_config() == {"name": "x"}
    with pytest.raises(UserError, match="has not finished"):
        folder.read_summary()
    folder.write_summary({"epochs": 2})
    assert folder.read_summary() == {"epochs": 2} and json.loads(folder.summary_path.read_text()) == {"epochs": 2}
    folder.summary_path.write_text("[1, 2]")
    with pytest.raises(UserError, match="summary.json: expected a JSON object"):
        folder.read_summary()
    folder.write_metrics("epoch\n1\n", "other.csv")
    assert (tmp_path / "other.csv").read_text() == "epoch\n1\n"


def test_reading_a_run_back_without_claiming_it(tmp_path):
    folder = RunFolder(tmp_path)  # a view: no lock file, nothing written
    assert folder.read_metrics() == {} and not folder.has_results()
    folder.write_config('name = "x"\n')
    assert folder.is_run() and not folder.has_results()  # started, nothing to show yet
    folder.write_metrics("epoch,train_loss,validation_accuracy\n1,0.5,\n2,0.25,0.9,extra\n3\n")
    assert folder.has_results() and sorted(tmp_path.iterdir()) == sorted([folder.config_path, folder.metrics_path()])
    columns = folder.read_metrics()
    assert list(columns) == ["epoch", "train_loss", "validation_accuracy"]
    assert columns["epoch"] == [1.0, 2.0, 3.0] and columns["train_loss"][:2] == [0.5, 0.25]
    assert [value != value for value in columns["validation_accuracy"]] == [True, False, True]  # nan: no number
    assert folder.read_metrics("other.csv") == {}
    folder.metrics_path().unlink()
    folder.write_summary({"epochs": 0})
    assert folder.has_results()
    folder.metrics_path("bad.csv").write_bytes(b"epoch\n\xff\n")
    with pytest.raises(UserError, match="bad.csv: cannot read the run's metrics"):
        folder.read_metrics("bad.csv")
