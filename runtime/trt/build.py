"""`casavox build-engines`: TensorRT engines for a bundle's GPU graphs, built on the target device.

For each fp16 graph: parse the ONNX with TensorRT's parser, build with the graph's optimization
profile (fp16; int8 only on request), write ``trt/<graph>.engine`` and an ``EPContext`` wrapper graph
that lets onnxruntime's TensorRT provider run the engine, check the engine against the ONNX graph on
the same inputs, and record all of it (GPU, compute capability, TensorRT/CUDA versions, flags,
parity) in the manifest. Graphs TensorRT cannot parse (the LLM's GroupQueryAttention is an
onnxruntime contrib op) are skipped with the reason; they run on onnxruntime's CUDA provider.
Requires ``casavox[gpu]`` (tensorrt, onnxruntime-gpu, onnx) and an NVIDIA GPU.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from casavox.errors import CasavoxError
from casavox.runtime import bundle as fmt
from casavox.runtime.components import LlmComponent
from casavox.runtime.trt.device import GpuFacts, gpu_facts
from casavox.runtime.trt.profiles import graph_profile

ENGINE_DIR = "trt"


class EngineBuildError(CasavoxError, RuntimeError):
    """Engines cannot be built here (no GPU, no TensorRT) or the bundle cannot take them."""


@dataclass
class BuildReport:
    built: dict[str, dict[str, Any]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def requirements() -> tuple[Any, GpuFacts]:
    """(tensorrt module, this GPU) or EngineBuildError saying exactly what is missing."""
    try:
        import tensorrt as trt
    except ImportError:
        raise EngineBuildError(
            "the tensorrt Python package is not installed: pip install 'casavox[gpu]' on the target device "
            "(Jetson: it comes with JetPack, README 'Jetson')"
        ) from None
    facts = gpu_facts()
    if facts is None:
        raise EngineBuildError(
            "no NVIDIA GPU found (nvidia-smi / Jetson device tree); engines are built on the GPU that runs them"
        )
    return trt, facts


def foreign_ops(path: Path) -> list[str]:
    """Operators outside the standard ONNX domain (TensorRT's parser knows none of them)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return sorted({f"{n.domain}.{n.op_type}" for n in model.graph.node if n.domain not in ("", "ai.onnx")})


def _build_one(trt, path: Path, profile: dict, int8: bool, workspace_gb: float, progress: bool) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Explicit batch is the only mode in TensorRT 10; 8.x (JetPack 5 / 6.0) must ask for it.
    explicit = (
        0
        if int(trt.__version__.split(".")[0]) >= 10
        else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    )
    network = builder.create_network(explicit)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineBuildError(f"TensorRT could not parse {path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    config.set_flag(trt.BuilderFlag.FP16)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
    shapes = builder.create_optimization_profile()
    for name, p in profile.items():
        shapes.set_shape(name, p["min"], p["opt"], p["max"])
    config.add_optimization_profile(shapes)
    if progress and hasattr(trt, "IProgressMonitor"):
        config.progress_monitor = _progress_monitor(trt, path.name)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise EngineBuildError(f"TensorRT failed to build an engine for {path.name} (see its log above)")
    return bytes(engine)


def _progress_monitor(trt, label: str):
    from tqdm import tqdm

    class Monitor(trt.IProgressMonitor):
        """TensorRT's build phases as tqdm bars (a build takes minutes on a Jetson)."""

        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.bars: dict[str, Any] = {}

        def phase_start(self, phase_name, parent_phase, num_steps):
            self.bars[phase_name] = tqdm(total=num_steps, desc=f"{label}: {phase_name}", leave=False)

        def step_complete(self, phase_name, step):
            bar = self.bars.get(phase_name)
            if bar is not None:
                bar.update(step + 1 - bar.n)
            return True  # False would cancel the build

        def phase_finish(self, phase_name):
            bar = self.bars.pop(phase_name, None)
            if bar is not None:
                bar.close()

    return Monitor()


def write_context_model(graph: dict, engine_name: str, out: Path, facts: GpuFacts) -> None:
    """An ONNX graph of one ``EPContext`` node (com.microsoft) pointing at the engine file: what
    onnxruntime's TensorRT provider loads to run a prebuilt engine (embed_mode 0 = file path)."""
    import onnx
    from onnx import TensorProto, helper

    types = {
        "float32": TensorProto.FLOAT,
        "float16": TensorProto.FLOAT16,
        "int64": TensorProto.INT64,
        "int32": TensorProto.INT32,
    }

    def info(spec: dict) -> Any:
        return helper.make_tensor_value_info(spec["name"], types[spec["dtype"]], spec["shape"])

    node = helper.make_node(
        "EPContext",
        [i["name"] for i in graph["inputs"]],
        [o["name"] for o in graph["outputs"]],
        domain="com.microsoft",
        main_context=1,
        embed_mode=0,
        ep_cache_context=engine_name,
        hardware_architecture=facts.compute_capability.replace(".", ""),
        source="TensorrtExecutionProvider",
    )
    model = helper.make_model(
        helper.make_graph(
            [node],
            "casavox_trt_engine",
            [info(i) for i in graph["inputs"]],
            [info(o) for o in graph["outputs"]],
        ),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)],
    )
    onnx.save(model, str(out))


def sample_feeds(graph: dict, profile: dict, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Inputs at the profile's opt shapes: speech-like floats, small token ids, all-ones masks."""
    feeds = {}
    for spec in graph["inputs"]:
        shape = profile[spec["name"]]["opt"]
        if spec["dtype"].startswith("int"):
            value = np.ones(shape) if "mask" in spec["name"] else rng.integers(0, 1000, size=shape)
            feeds[spec["name"]] = value.astype(np.int64)
        else:
            feeds[spec["name"]] = rng.standard_normal(shape).astype(spec["dtype"])
    return feeds


def parity(onnx_path: Path, context_path: Path, graph: dict, profile: dict) -> dict[str, Any]:
    """Max |difference| of every output, engine (TensorRT provider) vs ONNX graph (CUDA provider)."""
    import onnxruntime as ort

    if "TensorrtExecutionProvider" not in ort.get_available_providers():
        return {"measured": False, "reason": "this onnxruntime build has no TensorRT provider"}
    feeds = sample_feeds(graph, profile, np.random.default_rng(0))
    reference = ort.InferenceSession(str(onnx_path), providers=["CUDAExecutionProvider"]).run(None, feeds)
    engine = ort.InferenceSession(str(context_path), providers=["TensorrtExecutionProvider"]).run(None, feeds)
    diffs = {
        spec["name"]: float(np.abs(np.asarray(a, np.float32) - np.asarray(b, np.float32)).max())
        for spec, a, b in zip(graph["outputs"], reference, engine, strict=True)
    }
    return {"measured": True, "max_abs_diff": diffs, "inputs": "random, at the profile's opt shapes"}


def _kv_cache_dim(bundle: fmt.Bundle, graph: dict[str, Any]) -> int:
    """The LLM's head size for a graph without a recorded profile (bundles exported before the
    exporters recorded one); only LLM graphs have a ``kv_cache_dim`` axis, 64 stands in elsewhere."""
    if graph["component"] != LlmComponent.NAME:
        return 64
    return LlmComponent.from_bundle(bundle).head_dim


def build_engines(
    root: Path,
    int8: bool = False,
    workspace_gb: float = 2.0,
    only: list[str] | None = None,
    progress: bool = True,
) -> BuildReport:
    """Build engines for the bundle's fp16 graphs on this GPU and record them in its manifest."""
    trt, facts = requirements()
    bundle = fmt.verify(root, hash_files=False)
    manifest = bundle.manifest
    report = BuildReport()
    (Path(root) / ENGINE_DIR).mkdir(exist_ok=True)
    for rel, graph in sorted(manifest["graphs"].items()):
        if graph.get("quant") != "fp16" or (only and graph["component"] not in only):
            continue
        path = bundle.path(rel)
        odd = foreign_ops(path)
        if odd:
            report.skipped[rel] = (
                f"operators TensorRT's parser does not know: {', '.join(odd)} (runs on the CUDA provider)"
            )
            continue
        profile = graph.get("trt_profile") or graph_profile(
            graph, {"kv_cache_dim": _kv_cache_dim(bundle, graph)}
        )
        t0 = time.time()
        engine = _build_one(trt, path, profile, int8, workspace_gb, progress)
        stem = Path(rel).name.removesuffix(".onnx")
        engine_rel, context_rel = f"{ENGINE_DIR}/{stem}.engine", f"{ENGINE_DIR}/{stem}.ctx.onnx"
        (Path(root) / engine_rel).write_bytes(engine)
        write_context_model(graph, Path(engine_rel).name, Path(root) / context_rel, facts)
        entry = {
            "file": engine_rel,
            "context_file": context_rel,
            "built_on": facts.as_dict(),
            "flags": {"fp16": True, "int8": int8, "workspace_gb": workspace_gb},
            "profile": profile,
            "build_s": round(time.time() - t0, 1),
            "built_at": fmt.utc_now(),
            "parity": parity(path, Path(root) / context_rel, graph, profile),
        }
        manifest.setdefault("engines", {})[rel] = entry
        for f in (engine_rel, context_rel):
            fmt.add_file(Path(root), manifest, f)
        # after each engine, so an interrupted build keeps what is done; signed with this box's own
        # key (created on the first build, trusted here): the exported bundle's signature was checked
        # by verify() above, and the engines are what this box built from it
        fmt.write_manifest(Path(root), manifest, create_key=True)
        report.built[rel] = entry
    return report
