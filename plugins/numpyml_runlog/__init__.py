"""numpyml built-in plugin: run logging.

``metrics_csv`` writes ``metrics.csv`` in the run folder: a header, then one row per epoch
(``epoch``, ``train_loss``, ``<split>_loss``, ``<split>_accuracy`` for each evaluated split,
``learning_rate`` when a schedule is used, ``seconds``). The whole file is rewritten atomically after
every epoch, so it is always complete. ``filename`` must be a plain file name that is not one of the
run folder's own files (``config.toml``, ``model.safetensors``, ``checkpoints``, ...).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from numpyml_core import RunFolder, hookimpl
from numpyml_core.plugin_api import validate_file_name


class MetricsCSV:
    """Write one row per epoch to ``<run folder>/<filename>``."""

    def __init__(self, filename: str = RunFolder.METRICS) -> None:
        validate_file_name(filename, "filename")  # never a run's own file, never outside the folder
        self.filename = filename

    @staticmethod
    def render(rows: list[dict[str, Any]]) -> str:
        columns: list[str] = []
        for row in rows:
            columns += [key for key in row if key not in columns]
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_format(row.get(column, "")) for column in columns])
        return buffer.getvalue()

    @hookimpl
    def numpyml_on_run_start(self, run: Any) -> None:
        if run.history and run.folder is not None:  # resumed: the file holds exactly the restored epochs
            run.folder.write_metrics(self.render(run.history), self.filename)

    @hookimpl
    def numpyml_on_epoch_end(self, run: Any) -> None:
        if run.folder is not None:
            run.folder.write_metrics(self.render(run.history), self.filename)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


@hookimpl
def numpyml_register_components(register):
    register("callback", "metrics_csv", MetricsCSV)
