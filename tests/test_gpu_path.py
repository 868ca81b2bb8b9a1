"""The GPU path: TensorRT profiles, engine records and their checks, and the GPU runs themselves.

What needs an NVIDIA GPU, TensorRT or onnxruntime-gpu is marked ``gpu`` and skips with the reason
where they are missing (CI and the development machine have none); everything that decides *which*
graph runs where is plain Python over real bundle files and is tested here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from casavox.runtime import bundle as fmt
from casavox.runtime.providers import available_devices
from casavox.runtime.trt.device import GpuFacts, engine_mismatch, gpu_facts
from casavox.runtime.trt.engines import choose_graph
from casavox.runtime.trt.profiles import ProfileError, graph_profile, input_profile, ort_shape_options

ROOT = Path(__file__).resolve().parents[1]
H100 = GpuFacts("NVIDIA H100 80GB HBM3", "9.0", "560.35", "12.6", "10.7.0")
ORIN = GpuFacts("NVIDIA Jetson Orin Nano", "8.7", "R36.4.0", "12.6", "10.3.0")


def _tensorrt_installed() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def test_gpu_graphs_carry_tensorrt_profiles(full_bundle: Path) -> None:
    """Every fp16 graph the exporter wrote has min <= opt <= max for every input dimension."""
    manifest = fmt.verify(full_bundle, hash_files=False).manifest
    fp16 = {rel: g for rel, g in manifest["graphs"].items() if g["quant"] == "fp16"}
    assert {g["component"] for g in fp16.values()} == {"asr", "llm"}
    head_dim = manifest["components"]["llm"]["head_dim"]
    for rel, graph in fp16.items():
        profile = graph["trt_profile"]
        assert set(profile) == {i["name"] for i in graph["inputs"]}, rel
        for spec in graph["inputs"]:
            p = profile[spec["name"]]
            for dim, lo, opt, hi in zip(spec["shape"], p["min"], p["opt"], p["max"], strict=True):
                assert lo <= opt <= hi, (rel, spec["name"], dim)
                if isinstance(dim, int):
                    assert lo == opt == hi == dim
                if dim == "kv_cache_dim":
                    assert lo == hi == head_dim
    assert all("trt_profile" not in g for g in manifest["graphs"].values() if g["quant"] != "fp16")
    encoder = next(g for g in fp16.values() if g["role"] == "encoder")
    options = ort_shape_options(encoder["trt_profile"])
    assert options["trt_profile_max_shapes"] == "mel:1x80x3000"


def test_a_dimension_without_a_range_is_refused() -> None:
    assert input_profile([1, "frames"]) == {"min": [1, 100], "opt": [1, 1000], "max": [1, 3000]}
    with pytest.raises(ProfileError, match="'mystery'"):
        graph_profile({"inputs": [{"name": "x", "shape": ["mystery"], "dtype": "float32"}]})


def test_an_engine_runs_only_on_the_gpu_and_tensorrt_it_was_built_for() -> None:
    assert engine_mismatch(H100.as_dict(), H100) is None
    assert "compute capability 9.0" in engine_mismatch(H100.as_dict(), ORIN)
    other_trt = GpuFacts(H100.name, "9.0", H100.driver, H100.cuda, "10.8.0")
    assert "TensorRT 10.7.0" in engine_mismatch(H100.as_dict(), other_trt)
    assert engine_mismatch(H100.as_dict(), None) == "no NVIDIA GPU here"
    no_trt = GpuFacts(H100.name, "9.0", H100.driver, H100.cuda, "")
    assert engine_mismatch(H100.as_dict(), no_trt) == "TensorRT is not installed here"


def _bundle_with_engine(tmp_path: Path, built_on: GpuFacts) -> fmt.Bundle:
    """A real (small) bundle folder: one graph, an engine file and its wrapper, recorded as the
    builder records them."""
    root = tmp_path / "b"
    (root / "asr").mkdir(parents=True)
    (root / "trt").mkdir()
    (root / "asr" / "encoder.fp16.onnx").write_bytes(b"onnx graph")
    (root / "trt" / "encoder.fp16.engine").write_bytes(b"engine")
    (root / "trt" / "encoder.fp16.ctx.onnx").write_bytes(b"wrapper")
    manifest = fmt.new_manifest()
    manifest["graphs"]["asr/encoder.fp16.onnx"] = {
        "component": "asr",
        "quant": "fp16",
        "inputs": [],
        "outputs": [],
    }
    manifest["engines"] = {
        "asr/encoder.fp16.onnx": {
            "file": "trt/encoder.fp16.engine",
            "context_file": "trt/encoder.fp16.ctx.onnx",
            "built_on": built_on.as_dict(),
        }
    }
    for rel in ("asr/encoder.fp16.onnx", "trt/encoder.fp16.engine", "trt/encoder.fp16.ctx.onnx"):
        fmt.add_file(root, manifest, rel)
    fmt.write_manifest(root, manifest)
    return fmt.verify(root)


def test_the_runtime_takes_the_engine_only_when_it_matches(tmp_path: Path, caplog) -> None:
    bundle = _bundle_with_engine(tmp_path, H100)
    path, why = choose_graph(bundle, "asr/encoder.fp16.onnx", H100)
    assert path.name == "encoder.fp16.ctx.onnx" and "built for this GPU" in why
    with caplog.at_level("WARNING", logger="casavox.trt"):
        path, why = choose_graph(bundle, "asr/encoder.fp16.onnx", ORIN)
    assert path.name == "encoder.fp16.onnx" and "compute capability" in why
    assert "running the ONNX graph instead" in caplog.text
    # an engine the manifest lists must be there, like every other file
    (bundle.root / "trt" / "encoder.fp16.engine").write_bytes(b"enginf")  # same size, other bytes
    with pytest.raises(fmt.BundleError, match="sha256"):
        fmt.verify(bundle.root)
    (bundle.root / "trt" / "encoder.fp16.engine").unlink()
    with pytest.raises(fmt.BundleError, match="missing file trt/encoder.fp16.engine"):
        fmt.verify(bundle.root)


def test_engine_wrapper_graph_points_at_the_engine(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx")
    from casavox.runtime.trt.build import write_context_model

    graph = {
        "inputs": [{"name": "mel", "dtype": "float32", "shape": [1, 80, "frames"]}],
        "outputs": [{"name": "cross_k", "dtype": "float16", "shape": [4, 1, 6, "enc_len", 64]}],
    }
    write_context_model(graph, "encoder.fp16.engine", tmp_path / "ctx.onnx", ORIN)
    model = onnx.load(str(tmp_path / "ctx.onnx"))
    (node,) = model.graph.node
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert (node.op_type, node.domain) == ("EPContext", "com.microsoft")
    assert attrs["ep_cache_context"] == b"encoder.fp16.engine" and attrs["embed_mode"] == 0
    assert attrs["hardware_architecture"] == b"87"
    assert [i.name for i in model.graph.input] == ["mel"] and [o.name for o in model.graph.output] == [
        "cross_k"
    ]


@pytest.mark.skipif(
    _tensorrt_installed() and gpu_facts() is not None, reason="this machine can build engines"
)
def test_build_engines_without_a_gpu_says_what_is_missing_and_changes_nothing(tmp_path: Path) -> None:
    bundle = _bundle_with_engine(tmp_path, H100)
    before = (bundle.root / "manifest.json").read_bytes()
    out = subprocess.run(
        [sys.executable, "-m", "casavox.edge_app.cli", "build-engines", str(bundle.root)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 1
    assert "tensorrt Python package is not installed" in out.stderr or "no NVIDIA GPU" in out.stderr
    assert (bundle.root / "manifest.json").read_bytes() == before
    assert sorted(p.name for p in (bundle.root / "trt").iterdir()) == [
        "encoder.fp16.ctx.onnx",
        "encoder.fp16.engine",
    ]


@pytest.mark.gpu
@pytest.mark.skipif(not (_tensorrt_installed() and gpu_facts()), reason="needs TensorRT and an NVIDIA GPU")
def test_engines_built_here_transcribe_like_the_cpu(asr_bundle: Path, clips, tmp_path: Path) -> None:
    from casavox.runtime.asr.transcriber import load_transcriber
    from casavox.runtime.trt.build import build_engines

    copy = tmp_path / "bundle"
    shutil.copytree(asr_bundle, copy)
    report = build_engines(copy, only=["asr"], progress=False)
    assert len(report.built) == 2, report.skipped
    manifest = json.loads((copy / "manifest.json").read_text())
    for entry in manifest["engines"].values():
        assert entry["built_on"]["compute_capability"] == gpu_facts().compute_capability
    if "tensorrt" in available_devices():
        gpu = load_transcriber(copy, "fp16", device="tensorrt")
        cpu = load_transcriber(copy, "fp32", device="cpu")
        for c in clips[:4]:
            assert gpu.transcribe(c.audio).text.lower() == cpu.transcribe(c.audio).text.lower()


@pytest.mark.gpu
@pytest.mark.skipif(
    "cuda" not in available_devices(), reason="needs onnxruntime's CUDA provider and an NVIDIA GPU"
)
def test_cuda_sessions_keep_off_cudnn_attention(llm_bundle: Path) -> None:
    """cuDNN's attention plans every new sequence length anew (README "GPU"); our CUDA sessions are
    opened with flash / memory-efficient / unfused attention only."""
    from casavox.runtime.intents.llm import load_llm
    from casavox.runtime.providers import CUDA_OPTIONS

    llm = load_llm(fmt.verify(llm_bundle, hash_files=False), None, "cuda")
    assert llm.session.get_providers()[0] == "CUDAExecutionProvider"
    options = llm.session.get_provider_options()["CUDAExecutionProvider"]
    assert options["sdpa_kernel"] == CUDA_OPTIONS["sdpa_kernel"] == "19"


def test_gpu_check_tells_first_visits_from_repeats(llm_bundle: Path, tmp_path: Path) -> None:
    """The tool that found the per-length cost on the H200 runs anywhere (here on the CPU): per prompt
    length a first and a repeat time, decode steps both ways, and the profiler's split per op."""
    out = tmp_path / "shapes.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "shapes", "--bundle", str(llm_bundle), "--device", "cpu",
           "--out", str(out), "--profile", str(tmp_path / "trace")]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [r["tokens"] for r in result["prefill"]] == list(range(4, 100, 4))
    assert all(r["first_ms"] > 0 and r["repeat_ms"] > 0 for r in result["prefill"])
    assert result["decode_steps"]["first"]["n"] == result["decode_steps"]["repeat"]["n"] == 40
    ops = result["profile_top_ops"]
    assert ops["runs"]["prefill_first"] == ops["runs"]["prefill_repeat"] == 24
    assert ops["runs"]["decode_first"] == ops["runs"]["decode_repeat"] == 40
    assert any("MatMul" in op for op in ops["decode_first"])  # MatMul, or MatMulInteger for the int8 graph
