"""Which onnxruntime execution providers to use, and how sessions are configured.

Preference is TensorRT > CUDA > CPU among what this machine can run; a user can name one explicitly
(``--device cpu|cuda|tensorrt``). ``auto`` takes the best one and logs, once per process and
reason, why each better one was passed over. A named device that is unknown or unavailable, or that
onnxruntime could not start for a graph, is a clear :class:`DeviceError`, never a silent fallback: a
user who asked for the GPU must know they did not get it.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import onnxruntime as ort

from casavox.errors import CasavoxError

log = logging.getLogger("casavox.providers")
# Where an NVIDIA driver shows itself: desktop/server drivers, and Jetson's (L4T) GPU device nodes.
GPU_MARKERS = ("/proc/driver/nvidia/version", "/dev/nvhost-ctrl-gpu", "/dev/nvgpu/igpu0/ctrl")

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PREFERENCE = ["tensorrt", "cuda", "cpu"]
# Attention kernels the CUDA provider may pick: flash, memory-efficient and the unfused fallback
# (onnxruntime's AttentionBackend bits 1 | 2 | 16), not cuDNN's. onnxruntime prefers cuDNN's
# attention for fp16 on Hopper and newer, and cuDNN builds an execution plan for every new sequence
# length: measured on an H200 (benchmarks/gpu_check.py shapes), 35-45 ms the first time a length
# is seen against 3.5 ms after. An LLM's KV cache grows by one position per token, so every decode
# step of a new command paid it (a command took 300-590 ms instead of ~60).
CUDA_OPTIONS = {"sdpa_kernel": str(1 | 2 | 16)}


class DeviceError(CasavoxError, ValueError):
    """A requested execution device that does not exist or is not available here."""


def preferred_variant(device: str, variants) -> str:
    """The variant to run on ``device`` when none is named: the fp16 graphs on a GPU (int8
    MatMulInteger kernels exist only on the CPU provider), int8 on the CPU."""
    order = ["int8", "fp32", "fp16"] if resolve_device(device) == "cpu" else ["fp16", "fp32", "int8"]
    return next((v for v in order if v in variants), sorted(variants)[0])


def gpu_present() -> bool:
    return any(Path(p).exists() for p in GPU_MARKERS)


def unavailable_reason(device: str) -> str | None:
    """Why ``device`` cannot run here, or None when it can."""
    if device == "cpu":
        return None
    have = ort.get_available_providers()
    if PROVIDERS[device] not in have:
        return (
            f"this onnxruntime build ({ort.__version__}) has no {PROVIDERS[device]} "
            f"(it has {', '.join(have)}); install casavox[gpu] on a machine with an NVIDIA GPU"
        )
    if not gpu_present():
        return (
            f"{PROVIDERS[device]} is installed but no NVIDIA GPU driver was found ({', '.join(GPU_MARKERS)})"
        )
    return _provider_library_error(device)


@functools.cache
def _provider_library_error(device: str) -> str | None:
    """Whether the provider's own library loads, with the CUDA/cuDNN/TensorRT libraries it links.

    onnxruntime-gpu lists the TensorRT (and CUDA) provider as available whether or not TensorRT's
    (or CUDA's) libraries exist; a session asked for it then logs an error and runs elsewhere. The
    common desktop setup, onnxruntime-gpu without TensorRT, would make ``auto`` pick a provider that
    cannot start. Loading the provider library answers exactly, and the loader's message names the
    missing library. CUDA/cuDNN from NVIDIA's pip wheels are found through onnxruntime's own
    ``preload_dlls`` (they are not on the loader's path)."""
    import ctypes

    library = Path(ort.__file__).parent / "capi" / f"libonnxruntime_providers_{device}.so"
    if not library.is_file():  # not a pip layout (a Jetson build may link providers in): trust the list
        return None
    _preload_nvidia_libraries()
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        return f"onnxruntime's {PROVIDERS[device]} cannot load its libraries ({exc})"
    return None


def available_devices() -> list[str]:
    return [d for d in PREFERENCE if unavailable_reason(d) is None]


@functools.cache
def _note_once(message: str) -> None:
    log.info(message)


@functools.cache
def _preload_nvidia_libraries() -> None:
    """CUDA and cuDNN from NVIDIA's pip wheels, once per process (both GPU providers need them)."""
    import contextlib
    import io

    if hasattr(ort, "preload_dlls"):
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # it prints its warnings
                ort.preload_dlls(directory="")
        except Exception:  # noqa: BLE001 - a partial preload is fine; loading the provider decides
            pass


def resolve_device(device: str = "cpu") -> str:
    """``auto`` picks the best available (logging why better ones were skipped); a named device must
    be available."""
    device = device.lower().strip()
    if device == "auto":
        for candidate in PREFERENCE:
            reason = unavailable_reason(candidate)
            if reason is None:
                return candidate
            _note_once(f"device auto: skipping {candidate}: {reason}")
    if device not in PROVIDERS:
        raise DeviceError(f"unknown device '{device}' (choose from auto, {', '.join(PREFERENCE)})")
    reason = unavailable_reason(device)
    if reason is not None:
        raise DeviceError(f"device '{device}' is not available: {reason}")
    return device


def provider_list(device: str, cache_dir: Path | None = None, trt_options: dict | None = None) -> list:
    """The provider chain for a device: the device first, then CUDA and CPU for any op it lacks.

    TensorRT keeps the engines it builds in an on-disk cache beside the graph (the first start on a
    new GPU builds them, later starts load them), with the graph's optimization profile when known."""
    device = resolve_device(device)
    chain: list = []
    if device == "tensorrt":
        opts: dict = {"trt_fp16_enable": True, **(trt_options or {})}
        if cache_dir is not None:
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
        chain.append((PROVIDERS["tensorrt"], opts))
    if device in ("tensorrt", "cuda"):
        chain.append((PROVIDERS["cuda"], dict(CUDA_OPTIONS)))
    chain.append(PROVIDERS["cpu"])
    return chain


def session_options(threads: int | None = None, spinning: bool = False) -> ort.SessionOptions:
    """Options chosen for one short utterance at a time on a small box.

    - intra-op threads = the cores we may use (default: all visible CPUs). Inter-op parallelism
      stays 1: the graphs are chains, there is nothing to run side by side.
    - full graph optimization (fusions such as attention/GELU/LayerNorm) done once at load.
    - sequential execution; worker threads do not spin-wait for work unless ``spinning`` (the LLM:
      a decode step is hundreds of tiny kernels, and waking a sleeping thread for each one cost a
      quarter of the decode rate on 2 cores, README "Intent numbers"). Spinning only happens
      inside a run, so an idle daemon still burns nothing.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or len(os.sched_getaffinity(0))
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.log_severity_level = 3
    return opts


def open_session(
    path: Path,
    device: str = "cpu",
    threads: int | None = None,
    spinning: bool = False,
    trt_options: dict | None = None,
) -> ort.InferenceSession:
    """A session on ``device``; DeviceError if onnxruntime quietly fell back to another provider
    (it does that when, say, the CUDA libraries it needs are missing)."""
    device = resolve_device(device)
    session = ort.InferenceSession(
        str(path),
        sess_options=session_options(threads, spinning),
        providers=provider_list(device, Path(path).parent, trt_options),
    )
    wanted, active = PROVIDERS[device], session.get_providers()
    if wanted not in active:
        raise DeviceError(
            f"onnxruntime could not start {wanted} for {Path(path).name} (running on {', '.join(active)}); "
            "check the CUDA/cuDNN/TensorRT libraries onnxruntime-gpu needs"
        )
    return session


def open_graph(bundle, rel: str, device: str = "cpu", threads: int | None = None, spinning: bool = False):
    """A session for the bundle's graph ``rel``. On ``tensorrt``: the engine ``casavox build-engines``
    made for this GPU when there is one (else the ONNX graph, the reason logged), and the graph's
    optimization profile for onnxruntime's TensorRT provider."""
    device = resolve_device(device)
    if device != "tensorrt":
        return open_session(bundle.path(rel), device, threads, spinning)
    from casavox.runtime.trt.device import gpu_facts
    from casavox.runtime.trt.engines import choose_graph
    from casavox.runtime.trt.profiles import ort_shape_options

    # nvidia-smi only when there is an engine to check against this GPU
    has_engine = rel in bundle.manifest.get("engines", {})
    path, _ = choose_graph(bundle, rel, gpu_facts() if has_engine else None)
    profile = bundle.manifest["graphs"].get(rel, {}).get("trt_profile")
    return open_session(path, device, threads, spinning, ort_shape_options(profile) if profile else None)
