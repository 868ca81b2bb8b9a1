"""Torch -> ONNX, and the ONNX-to-ONNX steps every model in a bundle goes through.

Shared by the ASR and the LLM exporters: export a module with dynamic axes, quantize (onnxruntime's
dynamic int8 for CPU, weight-only fp16 conversion for GPU) and describe a graph's inputs/outputs for
the manifest.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import onnx
import torch

OPSET = 17
_DTYPES = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.BOOL: "bool",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
}


def export_module(
    module: torch.nn.Module,
    args: tuple,
    path: Path,
    input_names: list[str],
    output_names: list[str],
    dynamic_axes: dict[str, dict[int, str]],
    opset: int = OPSET,
) -> Path:
    """Trace ``module`` into a single-file ONNX graph (weights inline; our models are < 2 GB).

    The TorchScript exporter is used on purpose: with explicit dynamic_axes it gives a compact,
    constant-folded graph of plain ops for these small models, where the dynamo exporter adds
    shape-guard nodes and takes minutes on 2 cores.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            args,
            str(path),
            input_names=input_names,
            output_names=output_names,
            dynamic_axes=dynamic_axes,
            opset_version=opset,
            do_constant_folding=True,
            dynamo=False,
        )
    onnx.checker.check_model(str(path))
    return path


def quantize_int8(src: Path, dst: Path, op_types: tuple[str, ...] = ("MatMul", "Gemm")) -> Path:
    """Dynamic int8: MatMul/Gemm weights stored int8 per channel, activations quantized on the fly.

    The right choice for CPU inference of transformer weights with no calibration data. Pass
    ``Gather`` too to store embedding tables as int8 (dequantized on lookup).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        weight_type=QuantType.QInt8,
        op_types_to_quantize=list(op_types),
        per_channel=True,
        extra_options={"MatMulConstBOnly": True},
    )
    return dst


def convert_fp16(src: Path, dst: Path) -> Path:
    """fp16 weights and compute for GPUs; inputs/outputs stay float32 so the runtime is unchanged."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
    onnx.save(model, str(dst))
    return dst


def _shape(value_info: onnx.ValueInfoProto) -> list:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_param if d.dim_param else int(d.dim_value) for d in dims]


def describe_graph(path: Path) -> dict:
    """Inputs/outputs (name, dtype, symbolic shape) and opset, as the manifest records them."""
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    init = {i.name for i in graph.initializer}

    def spec(v: onnx.ValueInfoProto) -> dict:
        return {
            "name": v.name,
            "dtype": _DTYPES.get(v.type.tensor_type.elem_type, str(v.type.tensor_type.elem_type)),
            "shape": _shape(v),
        }

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return {
        "opset": opset,
        "inputs": [spec(v) for v in graph.input if v.name not in init],
        "outputs": [spec(v) for v in graph.output],
    }
