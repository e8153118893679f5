"""The experiment files that come with numpyml: ``experiments/*.toml``, in a wheel ``numpyml_core/experiments/``
(pyproject.toml's hatch ``force-include``). Rules: docs/api.md, ``Experiment.load``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["bundled_experiments", "experiment_path"]

_HERE = Path(__file__).resolve().parent


def bundled_experiments() -> dict[str, Path]:
    """The bundled experiment files by name (``"mnist"``), sorted: a wheel's ``numpyml_core/experiments/``, else
    (a clone) the repository's ``experiments/``; ``{}`` when neither exists."""
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
