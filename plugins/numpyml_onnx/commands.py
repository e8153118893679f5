"""The ``export`` command."""

from __future__ import annotations

from pathlib import Path

import typer

from numpyml_core import UserError
from numpyml_core.plugin_api import user_errors

FORMATS = ("onnx",)


def export(
    model: Path = typer.Argument(..., metavar="MODEL", help="A model file (model.safetensors) or a run folder."),
    format: str = typer.Option("onnx", "--format", "-f", help="The format to write: onnx."),
    out: Path = typer.Option(..., "--out", "-o", help="The file to write (e.g. model.onnx)."),
) -> None:
    """Write a trained network in another format, for deployment without numpyml.

    ONNX (pip install 'numpyml\\[onnx]'): opset 17, IR version 8; the input 'input' is the NHWC float32
    batch numpyml's predict takes (scaled as in training), the output 'probabilities' its class
    probabilities. See docs/export.md.
    """
    import numpyml_core as nm
    from numpyml_core.plugin_api import atomic_write_bytes

    with user_errors():
        if format not in FORMATS:
            raise UserError(f"--format {format}: not a format numpyml exports to; choose one of {', '.join(FORMATS)}.")
        from .exporter import IR_VERSION, OPSET, export_onnx, require_onnx

        require_onnx()
        network = nm.load_model(model)
        proto = export_onnx(network, str(model))
        atomic_write_bytes(out, proto.SerializeToString())
    print(f"{model} exported to {out} (ONNX opset {OPSET}, IR version {IR_VERSION}; input 'input' "
          f"(N, {', '.join(map(str, network.input_shape))}) float32, output 'probabilities' "
          f"(N, {', '.join(map(str, network.output_shape))}))")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
