"""Which onnxruntime execution providers to use, and how sessions are configured.

Preference is TensorRT > CUDA > CPU among what the installed onnxruntime build offers; a user can
name one explicitly (``--device cpu|cuda|tensorrt``). An unknown or unavailable device is a clear
:class:`DeviceError`, never a silent fallback: a user who asked for the GPU must know they did not
get it.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnxruntime as ort

PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
PREFERENCE = ["tensorrt", "cuda", "cpu"]


class DeviceError(ValueError):
    """A requested execution device that does not exist or is not available here."""


def available_devices() -> list[str]:
    have = set(ort.get_available_providers())
    return [d for d in PREFERENCE if PROVIDERS[d] in have]


def resolve_device(device: str = "cpu") -> str:
    """``auto`` picks the best available; a named device must be available."""
    device = device.lower().strip()
    if device == "auto":
        return available_devices()[0]
    if device not in PROVIDERS:
        raise DeviceError(f"unknown device '{device}' (choose from auto, {', '.join(PREFERENCE)})")
    if device not in available_devices():
        raise DeviceError(
            f"device '{device}' is not available in this onnxruntime build "
            f"(available: {', '.join(available_devices())}); install casavox[gpu] on a machine with an NVIDIA GPU"
        )
    return device


def provider_list(device: str, cache_dir: Path | None = None) -> list:
    """The provider chain for a device: the device first, then CPU for any op it lacks."""
    device = resolve_device(device)
    chain: list = []
    if device == "tensorrt":
        opts = {"trt_fp16_enable": True}
        if cache_dir is not None:
            opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=str(cache_dir))
        chain.append((PROVIDERS["tensorrt"], opts))
    if device in ("tensorrt", "cuda"):
        chain.append(PROVIDERS["cuda"])
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
    path: Path, device: str = "cpu", threads: int | None = None, spinning: bool = False
) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(path), sess_options=session_options(threads, spinning), providers=provider_list(device, path.parent)
    )
