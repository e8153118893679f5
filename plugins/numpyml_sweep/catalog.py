"""The bundled experiments (``numpyml_core.bundled_experiments``) described from their header comments.

An experiment file starts with a comment saying what it is and what it measured; :func:`describe`
takes from it a one-line description (the first sentence, or the first line when that sentence runs
on) and the measured test accuracy (the first ``N % test`` / ``test [accuracy] N %`` after the
word "measured"; "not measured" when the header says so or gives none). Standard library only.
"""

from __future__ import annotations

import re
from pathlib import Path

from numpyml_core import ConfigError, bundled_experiments, experiment_path
from numpyml_core.plugin_api import did_you_mean

_TEST_FIGURE = re.compile(r"(\d+(?:\.\d+)?)\s?%\s+test|test(?:\s+accuracy)?\s+(\d+(?:\.\d+)?)\s?%", re.IGNORECASE)
_ISSUE = re.compile(r"\s*\(issue \d+\)|,\s*issue \d+(?=\))")


def header(text: str) -> list[str]:
    """The comment lines at the top of a TOML file, without their ``#``."""
    lines = []
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        lines.append(line[1:].strip())
    return lines


def description(lines: list[str]) -> str:
    """The first sentence of the header if it ends on the first line, else the first line (cut with …)."""
    if not lines:
        return ""
    first = _ISSUE.sub("", lines[0])
    match = re.search(r"[.!?](\s|$)", first)
    if match:
        return first[:match.start() + 1]
    return first.rstrip(",;:") + " …"


def measured(lines: list[str]) -> str:
    """``test 97.7 %`` from the header's measured figures, or ``not measured``."""
    text = " ".join(lines)
    start = text.lower().find("measured")
    if start < 0 or text[max(0, start - 4):start].lower() == "not ":
        return "not measured"
    match = _TEST_FIGURE.search(text, start)
    return f"test {match.group(1) or match.group(2)} %" if match else "not measured"


def describe(path: Path) -> dict[str, str]:
    lines = header(path.read_text(encoding="utf-8"))
    return {"name": path.stem, "description": description(lines), "measured": measured(lines), "path": str(path)}


def describe_all() -> list[dict[str, str]]:
    """One entry per bundled experiment: name, description, measured, path."""
    return [describe(path) for path in bundled_experiments().values()]


def resolve_experiment(name: str) -> Path:
    """An experiment file given on the command line: the file, or the bundled experiment a bare name
    names (as ``numpyml run`` does); a :class:`ConfigError` listing the bundled ones otherwise."""
    path = Path(experiment_path(name))
    if path.is_file():
        return path
    bundled = bundled_experiments()
    hint = did_you_mean(name.removesuffix(".toml"), bundled) if bundled else ""
    raise ConfigError(f"{name}: no such experiment file, and no bundled experiment of that name{hint} "
                      f"(numpyml experiments lists them: {', '.join(bundled) or 'none'}).")
