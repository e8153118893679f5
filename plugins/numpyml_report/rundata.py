"""A run folder's files, read back: the resolved config, the metrics per epoch, the summary.

The files are found and read by :class:`numpyml_core.RunFolder`, the one owner of their names and
format (opened as a view: reading a run never claims or locks its folder). Everything else here is
standard library, so ``numpyml runs`` and ``numpyml show`` work without the optional plotting extra.
Unfinished runs (no summary.json yet, no model file) are read as far as they go.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numpyml_core import RunFolder, UserError

SPARK_CHARS = "▁▂▃▄▅▆▇█"


@dataclass
class RunData:
    """What one run folder holds. ``metrics`` maps each metrics.csv column to its values per epoch
    (floats; ``nan`` where a row has no value)."""

    path: Path
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    architecture: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        """The run folder's name: runs are labelled by it everywhere."""
        return self.path.resolve().name

    @property
    def folder(self) -> RunFolder:
        """The run folder's files (a view: it is not claimed or locked)."""
        return RunFolder(self.path)

    @property
    def model_path(self) -> Path:
        return self.folder.model_path

    @property
    def finished(self) -> bool:
        return bool(self.summary)

    @property
    def started(self) -> _dt.datetime | None:
        """When the run started: the modification time of its config.toml (written before training)."""
        config = self.folder.config_path
        if not config.is_file():
            return None
        return _dt.datetime.fromtimestamp(config.stat().st_mtime)

    @property
    def epochs(self) -> int:
        if "epochs" in self.summary:
            return int(self.summary["epochs"])
        return len(self.metrics.get("epoch", []))

    def last(self, column: str) -> float | None:
        """The summary's figure for ``column``, else the last finite value in metrics.csv."""
        value = self.summary.get(column)
        if isinstance(value, (int, float)):
            return float(value)
        values = [v for v in self.metrics.get(column, []) if math.isfinite(v)]
        return values[-1] if values else None

    @property
    def best_validation_accuracy(self) -> float | None:
        value = self.summary.get("best_validation_accuracy")
        if isinstance(value, (int, float)):
            return float(value)
        values = [v for v in self.metrics.get("validation_accuracy", []) if math.isfinite(v)]
        return max(values) if values else None

    @property
    def test_accuracy(self) -> float | None:
        return self.last("test_accuracy")

    @property
    def seconds(self) -> float | None:
        value = self.summary.get("seconds")
        if isinstance(value, (int, float)):
            return float(value)
        values = [v for v in self.metrics.get("seconds", []) if math.isfinite(v)]
        return sum(values) if values else None

    @property
    def dataset(self) -> str | None:
        if self.architecture and self.architecture.get("dataset"):
            return str(self.architecture["dataset"])
        table = self.config.get("dataset")
        return str(table.get("type")) if isinstance(table, dict) and table.get("type") else None

    def splits(self, metric: str) -> list[str]:
        """The splits with a ``<split>_<metric>`` column, in the order train, validation, test, others."""
        found = [c[: -len(metric) - 1] for c in self.metrics if c.endswith(f"_{metric}")]
        order = {"train": 0, "validation": 1, "test": 2}
        return sorted(found, key=lambda s: (order.get(s, 3), s))


def load_run(path: str | Path) -> RunData:
    """Read a run folder; a folder that is not one raises :class:`UserError`."""
    from numpyml_core.plugin_api import read_architecture

    path = Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: no such run folder.")
    folder = RunFolder(path)
    if not folder.is_run():
        raise UserError(f"{path}: not a run folder (it has no {RunFolder.CONFIG}); give a folder written by "
                        "'numpyml run'.")
    config = folder.read_config()
    summary = folder.read_summary() if folder.summary_path.is_file() else {}  # none yet: an unfinished run
    architecture = None
    if folder.model_path.is_file():
        try:
            architecture = read_architecture(folder.model_path)
        except UserError:
            architecture = None
    return RunData(path=path, config=config, metrics=folder.read_metrics(), summary=summary,
                   architecture=architecture)


def find_runs(folder: str | Path) -> list[RunData]:
    """The run folders directly inside ``folder`` (or ``folder`` itself when it is one)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder (runs are written to runs/ unless 'numpyml run --output' says otherwise).")
    if RunFolder(folder).has_results():
        return [load_run(folder)]
    runs = []
    for child in sorted(folder.iterdir()):
        if child.is_dir() and RunFolder(child).has_results():
            try:
                runs.append(load_run(child))
            except UserError:
                continue  # a damaged folder is skipped in a listing; 'numpyml show' explains it
    return runs


#: the table ``numpyml sweep`` writes in its folder (docs/sweeps.md): ``trial``, one column per swept key,
#: ``status``, ``validation_accuracy``, ``test_accuracy``, ``seconds``
SWEEP_CSV = "sweep.csv"
#: sweep.csv's columns after the swept keys
SWEEP_RESULTS = ("status", "validation_accuracy", "test_accuracy", "seconds")


@dataclass
class SweepData:
    """A sweep folder: ``rows`` of its sweep.csv (column -> text), the swept ``keys``, and the trials' run
    folders that have results (``runs``, in trial order)."""

    path: Path
    keys: list[str]
    rows: list[dict[str, str]]
    runs: list[RunData]

    @staticmethod
    def number(row: dict[str, str], column: str) -> bool:
        """Whether ``row`` holds a finite number in ``column``."""
        try:
            return math.isfinite(float(row.get(column) or "nan"))
        except ValueError:
            return False

    def score(self, row: dict[str, str], metric: str = "validation_accuracy") -> float:
        """``row``'s ``metric`` (``-inf`` when it has none), to sort trials best first."""
        return float(row[metric]) if self.number(row, metric) else -math.inf

    def best(self, metric: str = "validation_accuracy") -> dict[str, str] | None:
        """The first trial with the highest ``metric``, or ``None`` when no trial has one."""
        scored = [row for row in self.rows if self.number(row, metric)]
        return max(scored, key=lambda row: self.score(row, metric)) if scored else None


def load_sweep(path: str | Path) -> SweepData | None:
    """The sweep in folder ``path`` (``None`` when it holds no sweep.csv); a :class:`UserError` naming the file
    when sweep.csv cannot be read or lacks its columns."""
    import csv

    path = Path(path)
    table = path / SWEEP_CSV
    if not table.is_file():
        return None
    try:
        with open(table, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            columns = list(reader.fieldnames or [])
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{table}: cannot read the sweep's table ({exc}).") from None
    if not columns or columns[0] != "trial" or columns[-len(SWEEP_RESULTS):] != list(SWEEP_RESULTS):
        raise UserError(f"{table}: not a sweep table: expected the columns trial, the swept keys, "
                        f"{', '.join(SWEEP_RESULTS)} (as 'numpyml sweep' writes them), got {', '.join(columns)}.")
    runs = [load_run(child) for child in sorted(path.iterdir())
            if child.is_dir() and RunFolder(child).has_results()]
    return SweepData(path, columns[1:-len(SWEEP_RESULTS)], rows, runs)


# --------------------------------------------------------------------------------------------
# configs side by side
# --------------------------------------------------------------------------------------------
def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"learning_rate": 0.1}}`` -> ``{"optimizer.learning_rate": 0.1}``; list items
    of tables are numbered (``model.layers[0].units``)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict):
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
    elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}[{index}]"))
    else:
        out[prefix] = value
    return out


def compare_configs(configs: list[dict[str, Any]]) -> list[tuple[str, list[Any], bool]]:
    """Rows ``(key, [value per run or None], differs)`` over the union of keys, in first-seen order."""
    flat = [flatten(c) for c in configs]
    keys: list[str] = []
    for f in flat:  # a key only a later run has goes right after its predecessor in that run
        previous = None
        for key in f:
            if key not in keys:
                keys.insert(keys.index(previous) + 1 if previous is not None else len(keys), key)
            previous = key
    missing = object()
    rows = []
    for key in keys:
        values = [f.get(key, missing) for f in flat]
        differs = len(flat) > 1 and any(v != values[0] for v in values[1:])
        rows.append((key, [None if v is missing else v for v in values], differs))
    return rows


# --------------------------------------------------------------------------------------------
# text
# --------------------------------------------------------------------------------------------
def sparkline(values: list[float], width: int = 40) -> str:
    """Unicode block sparkline of the finite ``values``, averaged into at most ``width`` columns."""
    finite = [v for v in values if isinstance(v, (int, float)) and math.isfinite(v)]
    if not finite:
        return ""
    if len(finite) > width:
        buckets = []
        for i in range(width):
            chunk = finite[i * len(finite) // width:(i + 1) * len(finite) // width]
            buckets.append(sum(chunk) / len(chunk))
        finite = buckets
    low, high = min(finite), max(finite)
    if high - low <= 1e-12 * max(1.0, abs(high)):
        return SPARK_CHARS[3] * len(finite)
    top = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[int(round((v - low) / (high - low) * top))] for v in finite)


def percent(value: float | None, digits: int = 2) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{100 * value:.{digits}f}%"


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def date(run: RunData) -> str:
    started = run.started
    return started.strftime("%Y-%m-%d %H:%M") if started else "—"
