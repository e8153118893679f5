"""A numpyml network as an ONNX model (``onnx.helper``; ``pip install 'numpyml[onnx]'``).

The exported model takes what ``model.predict`` takes, a float32 batch in numpyml's layout (NHWC images
or flat features, scaled as the training batches were), under the input name ``input`` with a dynamic
batch axis, and returns the same class probabilities under ``probabilities``. It is written for ONNX
opset :data:`OPSET` (the default domain) and IR version :data:`IR_VERSION`, which ONNX Runtime 1.15 and
later run.

Layout: ONNX convolutions and pooling work on NCHW, numpyml on NHWC. The graph keeps every tensor in
numpyml's layout except between NCHW operators: a ``Transpose`` is inserted only where a tensor changes
layout (before the first convolution, before a flatten/reshape/dense that needs numpyml's element
order), so a chain ``conv -> batch norm -> relu -> pool -> conv`` transposes once on the way in and
once on the way out, and ``flatten`` after a convolution flattens in NHWC order exactly as numpyml does.

Layers are converted by class (the built-ins, listed in :data:`CONVERTERS`), or by their own optional
``to_onnx(graph, x)`` method (docs/plugins.md, "Exporting to ONNX"); any other layer is a
:class:`~numpyml_core.UserError` naming it.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from numpyml_core import MissingExtra, UserError, __version__

#: The ONNX operator set the exported models use (default domain ``ai.onnx``).
OPSET = 17
#: The ONNX IR version of the exported models (IR 8 goes with opset 17; ONNX Runtime >= 1.15).
IR_VERSION = 8
INPUT, OUTPUT = "input", "probabilities"


@runtime_checkable
class OnnxExportableLayer(Protocol):
    """The optional layer method this exporter uses: ``to_onnx(graph, x) -> y`` adds the inference computation to
    an ONNX graph; ``x`` and ``y`` name tensors batch first, NHWC, float32; raise ``ValueError`` to refuse
    (docs/plugins.md, docs/export.md)."""

    def to_onnx(self, graph: Any, x: str) -> str: ...


def require_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingExtra(
            "exporting to ONNX needs the onnx package, which is not installed. It is an optional dependency of "
            "numpyml: install it with `pip install 'numpyml[onnx]'` (or `uv sync --extra onnx` in this project), "
            "then run the command again."
        ) from None
    return onnx


class OnnxGraph:
    """The graph being built, as a layer's ``to_onnx(graph, x)`` sees it.

    ``x`` (and what ``to_onnx`` returns) is the name of a tensor in numpyml's layout: batch first, then
    the layer's per-sample input shape (NHWC for images), float32. A layer adds nodes with
    :meth:`node`, constants with :meth:`constant`, and returns the name of its output, which must have
    the per-sample shape its ``build`` returned. ``graph.onnx`` is the ``onnx`` module, ``graph.opset``
    the operator set in use. To refuse (an option ONNX cannot express), raise ``ValueError`` with the
    reason: the export fails with a message naming the layer and the reason.
    """

    def __init__(self, onnx: Any):
        self.onnx = onnx
        self.opset = OPSET
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._names: set[str] = {INPUT}
        self._nchw: set[str] = set()  # tensors held in NCHW (the transposed form of a NHWC tensor)
        self._converted: dict[tuple[str, str], str] = {}

    # -- the public part (what a layer's to_onnx uses) ----------------------------------------------
    def fresh(self, hint: str) -> str:
        """A tensor name not used yet, from ``hint``."""
        name, counter = hint, 1
        while name in self._names:
            counter += 1
            name = f"{hint}_{counter}"
        self._names.add(name)
        return name

    def constant(self, array: Any, hint: str = "const") -> str:
        """Add ``array`` as an initializer (float arrays as float32, integer arrays as int64); its name."""
        array = np.asarray(array)
        array = array.astype(np.float32 if array.dtype.kind == "f" else np.int64)
        name = self.fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def node(self, op_type: str, inputs: list[str], hint: str | None = None, outputs: int = 1,
             **attributes: Any) -> Any:
        """Add one operator; returns its output name (a list of names with ``outputs > 1``)."""
        names = [self.fresh(hint or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, names, name=self.fresh(f"node_{op_type}"),
                                                     **attributes))
        return names[0] if outputs == 1 else names

    # -- layouts (used by the built-in converters) --------------------------------------------------
    def is_nchw(self, x: str) -> bool:
        return x in self._nchw

    def nchw(self, x: str) -> str:
        """``x`` (a 4-D image tensor) in NCHW, transposing it once if it is in NHWC."""
        if x in self._nchw:
            return x
        return self._transpose(x, [0, 3, 1, 2], "nchw", to_nchw=True)

    def nhwc(self, x: str) -> str:
        """``x`` in numpyml's layout, transposing it once if it is in NCHW."""
        if x not in self._nchw:
            return x
        return self._transpose(x, [0, 2, 3, 1], "nhwc", to_nchw=False)

    def mark_nchw(self, x: str) -> str:
        self._nchw.add(x)
        return x

    def same_layout(self, x: str, y: str) -> str:
        """Mark ``y`` as held in the layout of ``x`` (for element-wise operators)."""
        if x in self._nchw:
            self._nchw.add(y)
        return y

    def _transpose(self, x: str, perm: list[int], hint: str, to_nchw: bool) -> str:
        key = (x, hint)
        if key not in self._converted:
            y = self.node("Transpose", [x], hint=f"{x}_{hint}", perm=perm)
            if to_nchw:
                self._nchw.add(y)
            self._converted[key] = y
        return self._converted[key]


# --------------------------------------------------------------------------------------------
# converters of the built-in layers: (graph, layer, x) -> output name
# --------------------------------------------------------------------------------------------
def _activation(graph: OnnxGraph, activation: Any, x: str, where: str) -> str:
    if activation is None:
        return x
    converter = CONVERTERS.get(_class_path(activation))
    if converter is not None:
        return converter(graph, activation, x)
    own = getattr(activation, "to_onnx", None)
    if own is None:
        raise _unknown(activation, where)
    return own(graph, graph.nhwc(x))


def _elementwise(op: str, **attributes: Any) -> Callable[[OnnxGraph, Any, str], str]:
    def convert(graph: OnnxGraph, layer: Any, x: str) -> str:
        return graph.same_layout(x, graph.node(op, [x], **attributes))
    return convert


def _leaky_relu(graph: OnnxGraph, layer: Any, x: str) -> str:
    return graph.same_layout(x, graph.node("LeakyRelu", [x], alpha=float(layer.alpha)))


def _softmax(graph: OnnxGraph, layer: Any, x: str) -> str:
    return graph.node("Softmax", [graph.nhwc(x)], axis=-1)  # numpyml's softmax is over the last axis


def _dense(graph: OnnxGraph, layer: Any, x: str) -> str:
    x = graph.nhwc(x)
    weight = graph.constant(layer.params["weight"], "dense_weight")
    if layer.use_bias:
        y = graph.node("Gemm", [x, weight, graph.constant(layer.params["bias"], "dense_bias")], hint="dense")
    else:
        y = graph.node("MatMul", [x, weight], hint="dense")
    return _activation(graph, layer.activation, y, "the activation of a dense layer")


def _onnx_pads(pads: tuple[int, int, int, int]) -> list[int]:
    top, bottom, left, right = (int(p) for p in pads)
    return [top, left, bottom, right]  # ONNX: every axis's start, then every axis's end


def _conv2d(graph: OnnxGraph, layer: Any, x: str) -> str:
    x = graph.nchw(x)
    weight = np.transpose(layer.params["weight"], (3, 2, 0, 1))  # (kh, kw, in, out) -> (out, in, kh, kw)
    inputs = [x, graph.constant(weight, "conv_weight")]
    if layer.bias == "tied":
        inputs.append(graph.constant(layer.params["bias"], "conv_bias"))
    y = graph.mark_nchw(graph.node("Conv", inputs, hint="conv", kernel_shape=list(layer.kernel_size),
                                   strides=list(layer.strides), pads=_onnx_pads(layer.pads), dilations=[1, 1]))
    if layer.bias == "untied":  # one bias per output position and filter: (out_h, out_w, F) -> (1, F, out_h, out_w)
        bias = np.transpose(layer.params["bias"], (2, 0, 1))[None]
        y = graph.mark_nchw(graph.node("Add", [y, graph.constant(bias, "conv_untied_bias")], hint="conv"))
    return _activation(graph, layer.activation, y, "the activation of a conv2d layer")


def _pool2d(graph: OnnxGraph, layer: Any, x: str) -> str:
    x = graph.nchw(x)
    attributes = {"kernel_shape": list(layer.pool_size), "strides": list(layer.strides),
                  "pads": _onnx_pads(layer.pads)}
    if layer.mode == "max":
        return graph.mark_nchw(graph.node("MaxPool", [x], hint="max_pool", **attributes))
    # numpyml averages over the real cells of a window: padding is not counted
    return graph.mark_nchw(graph.node("AveragePool", [x], hint="avg_pool", count_include_pad=0, **attributes))


def _global_avg_pool(graph: OnnxGraph, layer: Any, x: str) -> str:
    pooled = graph.node("GlobalAveragePool", [graph.nchw(x)], hint="global_avg_pool")  # (N, C, 1, 1)
    return graph.node("Flatten", [pooled], hint="global_avg_pool", axis=1)  # (N, C): the same in both layouts


def _batch_norm(graph: OnnxGraph, layer: Any, x: str) -> str:
    # inference: y = (x - mean) / sqrt(var + eps) * gamma + beta = x * scale + shift, folded in float64
    mean = layer.state["moving_mean"].astype(np.float64)
    inv_std = 1.0 / np.sqrt(layer.state["moving_variance"].astype(np.float64) + layer.epsilon)
    gamma = layer.params["gamma"].astype(np.float64) if layer.scale else 1.0
    beta = layer.params["beta"].astype(np.float64) if layer.center else 0.0
    scale = inv_std * gamma
    shift = beta - mean * scale
    if graph.is_nchw(x):  # channels on axis 1
        scale, shift = scale[:, None, None], shift[:, None, None]
    y = graph.node("Mul", [x, graph.constant(scale, "bn_scale")], hint="batch_norm")
    y = graph.node("Add", [y, graph.constant(shift, "bn_shift")], hint="batch_norm")
    return graph.same_layout(x, y)


def _dropout(graph: OnnxGraph, layer: Any, x: str) -> str:
    return x  # identity at inference


def _flatten(graph: OnnxGraph, layer: Any, x: str) -> str:
    return graph.node("Flatten", [graph.nhwc(x)], hint="flatten", axis=1)  # numpyml's (NHWC) element order


def _reshape(graph: OnnxGraph, layer: Any, x: str) -> str:
    shape = graph.constant(np.array([-1, *layer.output_shape], dtype=np.int64), "reshape_shape")
    return graph.node("Reshape", [graph.nhwc(x), shape], hint="reshape")


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}:{cls.__qualname__}"


#: class ("module:qualname") -> converter, for numpyml's built-in layers and activations
CONVERTERS: dict[str, Callable[[OnnxGraph, Any, str], str]] = {
    "numpyml_layers.dense:Dense": _dense,
    "numpyml_layers.reshaping:Flatten": _flatten,
    "numpyml_layers.reshaping:Reshape": _reshape,
    "numpyml_layers.dropout:Dropout": _dropout,
    "numpyml_layers.normalization:BatchNorm": _batch_norm,
    "numpyml_layers.activations:Identity": _elementwise("Identity"),
    "numpyml_layers.activations:Sigmoid": _elementwise("Sigmoid"),
    "numpyml_layers.activations:Tanh": _elementwise("Tanh"),
    "numpyml_layers.activations:ReLU": _elementwise("Relu"),
    "numpyml_layers.activations:LeakyReLU": _leaky_relu,
    "numpyml_layers.activations:Softmax": _softmax,
    "numpyml_conv.conv:Conv2D": _conv2d,
    "numpyml_conv.pooling:Pool2D": _pool2d,
    "numpyml_conv.pooling:GlobalAvgPool": _global_avg_pool,
}


def _unknown(layer: Any, where: str) -> UserError:
    return UserError(
        f"cannot export {where} to ONNX: {type(layer).__module__}.{type(layer).__qualname__} has no ONNX conversion "
        "(numpyml converts its built-in layers and activations, and a plugin's layer can add a to_onnx(graph, x) "
        "method: see docs/plugins.md, 'Exporting to ONNX')."
    )


def export_onnx(model: Any, source: str = "the model") -> Any:
    """The ``onnx.ModelProto`` of a built numpyml ``model`` (from ``numpyml_core.load_model``), checked
    with ``onnx.checker``. Raises :class:`~numpyml_core.UserError` for a layer that cannot be exported
    and :class:`~numpyml_core.MissingExtra` without the onnx package."""
    onnx = require_onnx()
    graph = OnnxGraph(onnx)
    x = INPUT
    configs = getattr(model, "configs", None) or [{} for _ in model.layers]
    for index, layer in enumerate(model.body):
        kind = configs[index].get("type", type(layer).__name__) if index < len(configs) else type(layer).__name__
        where = f"layer #{index + 1} ({kind}) of {source}"
        converter = CONVERTERS.get(_class_path(layer))
        try:
            if converter is not None:
                x = converter(graph, layer, x)
            elif callable(getattr(layer, "to_onnx", None)):
                x = layer.to_onnx(graph, graph.nhwc(x))
            else:
                raise _unknown(layer, where)
        except ValueError as exc:
            raise UserError(f"cannot export {where} to ONNX: {exc}") from None
    if model.head is not None:
        x = _activation(graph, model.head, x, f"the output activation of {source}")
    x = graph.nhwc(x)
    output = graph.node("Identity", [x], hint=OUTPUT)  # a stable output name whatever the last operator
    helper = onnx.helper
    inputs = [helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, ["N", *model.input_shape])]
    outputs = [helper.make_tensor_value_info(output, onnx.TensorProto.FLOAT, ["N", *model.output_shape])]
    body = helper.make_graph(graph.nodes, "numpyml", inputs, outputs, graph.initializers)
    proto = helper.make_model(body, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="numpyml", producer_version=__version__,
                              doc_string=f"exported by numpyml {__version__} from {source}: input NHWC float32 "
                                         "scaled as in training, output class probabilities")
    architecture = getattr(model, "architecture", None) or {}
    if architecture.get("class_names"):
        helper.set_model_props(proto, {"class_names": ",".join(str(c) for c in architecture["class_names"]),
                                       "dataset": str(architecture.get("dataset", ""))})
    try:
        onnx.checker.check_model(proto, full_check=True)
    except onnx.checker.ValidationError as exc:  # a plugin's to_onnx built an invalid graph
        raise UserError(f"the ONNX graph built from {source} does not validate: {str(exc).splitlines()[0]}") from None
    return proto
