"""The experiment files that come with numpyml (the repository's ``experiments/*.toml``).

A wheel carries them as ``numpyml_core/experiments/`` (pyproject.toml's hatch ``force-include``); an
editable install (a clone) reads the repository's ``experiments/`` folder itself. Standard library only.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bundled_experiments", "experiment_path"]

_HERE = Path(__file__).resolve().parent


def bundled_experiments() -> dict[str, Path]:
    """The bundled experiment files by name (the file name without ``.toml``: ``"mnist"``), sorted.

    They are the packaged folder ``numpyml_core/experiments/`` in an installed wheel, else (an editable
    install of a clone) the repository's ``experiments/`` next to ``numpyml_core/``; ``{}`` when neither
    exists. ``numpyml run NAME`` and ``Experiment.load(NAME)`` use them for a bare name that is not a
    file in the current folder; ``numpyml experiments`` lists them."""
    for folder in (_HERE / "experiments", _HERE.parent / "experiments"):
        if folder.is_dir():
            return {path.stem: path for path in sorted(folder.glob("*.toml")) if path.is_file()}
    return {}


def experiment_path(path: str | os.PathLike) -> str | os.PathLike:
    """``path``, or the bundled experiment it names: a bare name (``mnist`` or ``mnist.toml``, no folder
    part) that is not a file here but is bundled."""
    text = os.fspath(path)
    if os.path.exists(text) or os.sep in text or (os.altsep and os.altsep in text):
        return path
    return bundled_experiments().get(text.removesuffix(".toml"), path)
