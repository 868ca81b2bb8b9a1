"""Pick what a graph runs as on the TensorRT device: this GPU's engine if the bundle has one built
for it, else the ONNX graph (onnxruntime's TensorRT provider then builds and caches its own engine).
"""

from __future__ import annotations

import logging
from pathlib import Path

from casavox.runtime.bundle import Bundle
from casavox.runtime.trt.device import GpuFacts, engine_mismatch

log = logging.getLogger("casavox.trt")


def choose_graph(bundle: Bundle, rel: str, here: GpuFacts | None) -> tuple[Path, str]:
    """(path to load, why) for graph ``rel``: the engine's EPContext wrapper when its record
    matches this GPU and TensorRT version, otherwise the ONNX graph with the reason logged."""
    entry = bundle.manifest.get("engines", {}).get(rel)
    if entry is None:
        return bundle.path(rel), "no engine built for this graph (run casavox build-engines on this device)"
    reason = engine_mismatch(entry.get("built_on", {}), here)
    if reason is not None:
        log.warning("not using the TensorRT engine for %s: %s; running the ONNX graph instead", rel, reason)
        return bundle.path(rel), reason
    return bundle.path(entry["context_file"]), "engine built for this GPU and TensorRT version"
