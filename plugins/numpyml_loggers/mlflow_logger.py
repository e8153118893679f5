"""The ``mlflow`` callback: params, metrics and the model of a run in an MLflow store, no server."""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from numpyml_core import RunFolder, UserError, hookimpl

from ._common import epoch_scalars, import_extra

_PARAM_LENGTH = 6000  # MLflow's limit on a parameter value
_BATCH_PARAMS = 100  # and on parameters per log_batch call
_BATCH_METRICS = 1000


class MLflowLogger:
    """Log the run to MLflow: the resolved experiment as params, every metric per epoch, the summary
    and the model file as artifacts. Needs mlflow-skinny: ``pip install 'numpyml[mlflow]'``.

    ``tracking_uri``: where the store is. Default: a local file store ``mlruns`` beside the run
    folder (``runs/mlruns`` for runs in ``runs/``), so the runs of a project share one store; a
    folder path (relative to the current directory) is a file store too; any MLflow URI
    (``sqlite:///...``, ``http://...``) is used as given. Browse a file store with
    ``mlflow ui --backend-store-uri runs/mlruns``. File stores are allowed for this process
    (``MLFLOW_ALLOW_FILE_STORE=true``, which MLflow 3 asks for) unless that variable is set already.
    ``experiment``: the MLflow experiment (default: the experiment's ``name``); ``run_name``
    (default: the run folder's name). ``every_n_batches`` > 0 also logs ``batch_train_loss``
    every that many batches (sent at the end of each epoch). A resumed run continues the same
    MLflow run (its id is kept in the checkpoints).
    """

    def __init__(self, tracking_uri: str = "", experiment: str = "", run_name: str = "", every_n_batches: int = 0,
                 log_model: bool = True) -> None:
        if every_n_batches < 0:
            raise ValueError(f"every_n_batches must be 0 (off) or more, got {every_n_batches}")
        import_extra("mlflow", "mlflow-skinny", "mlflow", "mlflow")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.every_n_batches = int(every_n_batches)
        self.log_model = bool(log_model)
        self.client: Any = None
        self.run_id: str | None = None
        self._pending: list[Any] = []

    # -- where --------------------------------------------------------------------------------
    def store_uri(self, run: Any) -> str:
        value = self.tracking_uri
        if value and ("://" in value or value.startswith("file:")):
            return value
        if value:
            path = Path(value).expanduser()
        elif run.output_dir is not None:
            path = Path(run.output_dir).resolve().parent / "mlruns"
        else:
            path = Path("mlruns")
        return path.resolve().as_uri()

    # -- hooks --------------------------------------------------------------------------------
    @hookimpl
    def numpyml_on_run_start(self, run: Any) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        uri = self.store_uri(run)
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        try:
            self.client = MlflowClient(tracking_uri=uri)
            if self.run_id is not None and self._exists(self.run_id):  # resumed: continue the same MLflow run
                self.client.update_run(self.run_id, status="RUNNING")
                return
            name = self.experiment or run.spec.name
            found = self.client.get_experiment_by_name(name)
            experiment_id = found.experiment_id if found is not None else self.client.create_experiment(name)
            run_name = self.run_name or (Path(run.output_dir).resolve().name if run.output_dir else run.spec.name)
            tags = {"numpyml.experiment": str(run.spec.source)}
            if run.output_dir is not None:
                tags["numpyml.run_dir"] = str(Path(run.output_dir).resolve())
            created = self.client.create_run(experiment_id, run_name=run_name, tags=tags)
            self.run_id = created.info.run_id
            self._log_params(run)
            if run.folder is not None and run.folder.is_run():
                self.client.log_artifact(self.run_id, str(run.folder.config_path))
        except MlflowException as exc:
            raise UserError(f"callback 'mlflow': cannot use the MLflow store {uri}: {exc.message}") from None

    @hookimpl
    def numpyml_on_batch_end(self, run: Any, loss: float | None) -> None:
        if self.run_id is None or not self.every_n_batches or loss is None:
            return
        if run.step % self.every_n_batches == 0:
            from mlflow.entities import Metric

            self._pending.append(Metric("batch_train_loss", float(loss), _now(), run.step))

    @hookimpl
    def numpyml_on_epoch_end(self, epoch: int, metrics: dict) -> None:
        if self.run_id is None:
            return
        from mlflow.entities import Metric

        stamp = _now()
        batch = self._pending + [Metric(key, value, stamp, epoch) for key, value in epoch_scalars(metrics).items()]
        self._pending = []
        for start in range(0, len(batch), _BATCH_METRICS):
            self.client.log_batch(self.run_id, metrics=batch[start:start + _BATCH_METRICS])

    @hookimpl
    def numpyml_on_run_end(self, run: Any, summary: dict) -> None:
        if self.run_id is None:
            return
        self.client.log_dict(self.run_id, summary, RunFolder.SUMMARY)
        if self.log_model:
            with tempfile.TemporaryDirectory() as folder:
                files = RunFolder(folder)
                files.write_model(run.model, run.architecture())
                self.client.log_artifact(self.run_id, str(files.model_path))
        self.client.set_terminated(self.run_id, status="FINISHED")

    @hookimpl
    def numpyml_on_error(self, error: BaseException) -> None:
        if self.run_id is None or self.client is None:
            return
        try:
            self.client.set_terminated(self.run_id, status="KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED")
        except Exception:  # noqa: BLE001 - reporting the run's own error matters more than the store's
            pass

    # -- checkpoints: a resumed run logs into the same MLflow run --------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id or ""}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.run_id = state.get("run_id") or None

    # -- helpers --------------------------------------------------------------------------------
    def _exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
            return True
        except MlflowException:
            return False

    def _log_params(self, run: Any) -> None:
        from mlflow.entities import Param

        params = [Param(key, _param_value(value)) for key, value in _flat(run.spec.to_dict()).items()]
        for start in range(0, len(params), _BATCH_PARAMS):
            self.client.log_batch(self.run_id, params=params[start:start + _BATCH_PARAMS])


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"layers": [{"units": 3}]}}`` -> ``{"model.layers.0.units": 3}``: MLflow parameter names
    (which allow no brackets); a list of plain values stays one value."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list) and any(isinstance(item, dict) for item in value):
        items = list(enumerate(value))
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, item in items:
        out.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)
    return text[:_PARAM_LENGTH]


def _now() -> int:
    return int(time.time() * 1000)
