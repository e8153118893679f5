"""The ``summary`` command: a Keras-style table of a network, from an experiment file or a model file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Protocol, runtime_checkable

import typer

from numpyml_core import UserError
from numpyml_core.plugin_api import user_errors

BYTES = 4  # float32


@runtime_checkable
class MultiplyAddsLayer(Protocol):
    """The optional layer method this command uses: ``multiply_adds(input_shape)``, multiply-adds per sample at
    inference (without it a layer with parameters shows ``?``). ``input_shape`` excludes the batch axis."""

    def multiply_adds(self, input_shape: tuple[int, ...]) -> int: ...


def _activation_name(config: dict[str, Any]) -> str | None:
    activation = config.get("activation")
    if isinstance(activation, dict):
        return activation.get("type")
    return activation if isinstance(activation, str) else None


def multiply_adds(layer: Any, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> int | None:
    """Multiply-adds one sample costs in ``layer`` at inference: the weight products of dense and conv2d
    layers and the folded scale-and-shift of batch norm; 0 for layers without weights (pooling, reshaping,
    activations, dropout); a plugin layer's own ``multiply_adds(input_shape)`` method; else ``None``."""
    cls = type(layer)
    path = f"{cls.__module__}:{cls.__qualname__}"
    params = getattr(layer, "params", None) or {}
    if path == "numpyml_layers.dense:Dense":
        return math.prod(params["weight"].shape)
    if path == "numpyml_conv.conv:Conv2D":
        kh, kw, channels, filters = params["weight"].shape
        return math.prod(output_shape[:2]) * filters * kh * kw * channels
    if path == "numpyml_layers.normalization:BatchNorm":
        return math.prod(output_shape)
    own = getattr(layer, "multiply_adds", None)
    if callable(own):
        return int(own(tuple(input_shape)))
    if not params:
        return 0
    return None


def describe(model: Any, batch_size: int) -> dict[str, Any]:
    """Rows and totals of ``model`` (a built network) for a batch of ``batch_size`` samples."""
    rows = []
    shape = tuple(model.input_shape)
    activation_values = math.prod(shape)  # the input batch itself
    unknown = False
    for index, layer in enumerate(model.layers):
        config = model.configs[index] if index < len(model.configs) else {}
        kind = config.get("type", type(layer).__name__)
        activation = _activation_name(config)
        output = tuple(model.layer_shapes[index])
        params = sum(int(a.size) for a in (getattr(layer, "params", None) or {}).values())
        state = sum(int(a.size) for a in (getattr(layer, "state", None) or {}).values())
        macs = multiply_adds(layer, shape, output)
        unknown = unknown or macs is None
        rows.append({"layer": index + 1, "type": kind, "activation": activation, "output_shape": list(output),
                     "parameters": params, "non_trainable": state, "multiply_adds": macs})
        activation_values += math.prod(output)
        shape = output
    trainable = sum(r["parameters"] for r in rows)
    frozen = sum(r["non_trainable"] for r in rows)
    return {
        "input_shape": list(model.input_shape),
        "layers": rows,
        "parameters": trainable + frozen,
        "trainable_parameters": trainable,
        "non_trainable_parameters": frozen,
        "multiply_adds": sum(r["multiply_adds"] or 0 for r in rows),
        "multiply_adds_complete": not unknown,
        "batch_size": batch_size,
        "parameter_bytes": (trainable + frozen) * BYTES,
        "activation_bytes": batch_size * activation_values * BYTES,
    }


def _size(n: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"


def _load(path: Path) -> tuple[Any, int | None, str]:
    import numpyml_core as nm

    if path.suffix == ".toml":
        experiment = nm.Experiment.load(path)
        return experiment.validate(), experiment.spec.training.batch_size, "experiment (untrained)"
    if not path.exists():
        raise UserError(f"{path}: no such file or folder; expected an experiment file (.toml), a model file "
                        "(model.safetensors) or a run folder.")
    return nm.load_model(path), None, "model file"


def summary(
    source: Path = typer.Argument(..., metavar="EXPERIMENT.toml | MODEL.safetensors",
                                  help="An experiment file, a model file or a run folder."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", min=1,
                                             help="The batch for the activation memory (default: the experiment's "
                                                  "batch_size, else 32)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """A Keras-style table of the network: per layer its type, output shape, parameters and multiply-adds
    per sample; totals; the memory of the parameters and of a batch's activations (float32)."""
    from rich.console import Console
    from rich.table import Table

    with user_errors():
        model, experiment_batch, what = _load(source)
        report = describe(model, batch_size or experiment_batch or 32)
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(title=f"{source.name}: {what}, input {tuple(report['input_shape'])}")
    for column, justify in (("#", "right"), ("layer (type)", "left"), ("output shape", "left"),
                            ("parameters", "right"), ("multiply-adds", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in report["layers"]:
        name = row["type"] + (f" ({row['activation']})" if row["activation"] else "")
        params = f"{row['parameters']:,}" + (f" + {row['non_trainable']:,}" if row["non_trainable"] else "")
        macs = "?" if row["multiply_adds"] is None else f"{row['multiply_adds']:,}"
        table.add_row(str(row["layer"]), name, str(tuple(["N", *row["output_shape"]])).replace("'", ""), params, macs)
    console = Console()
    console.print(table)
    approx = "" if report["multiply_adds_complete"] else "at least "
    console.print(
        f"parameters: {report['parameters']:,} ({report['trainable_parameters']:,} trainable, "
        f"{report['non_trainable_parameters']:,} non-trainable), {_size(report['parameter_bytes'])}\n"
        f"multiply-adds per sample: {approx}{report['multiply_adds']:,}\n"
        f"activations for a batch of {report['batch_size']}: {_size(report['activation_bytes'])} "
        "(the input and every layer's output, float32; training also keeps gradients as large as the parameters)",
        highlight=False)


def register(app: typer.Typer) -> None:
    app.command("summary")(summary)
