"""TensorRT optimization profiles (min / opt / max per dynamic input dimension) for a bundle's graphs.

A TensorRT engine is built for ranges of input shapes. The ranges follow what the runtime feeds:
Whisper's trimmed window is 100-3,000 mel frames (1-30 s; a command is ~3 s, 300 frames padded to a
1,000-frame window at most, README "Trimmed encoder"); the decoder takes 1-4 tokens at a time on a
self-attention cache of up to 228 positions (224 tokens + the prompt); the LLM prefills up to 512
tokens (a command prompt is ~100) on a cache of up to 1,024 positions and decodes 1-8 tokens per
step (grammar fast-forward feeds several).
"""

from __future__ import annotations

from typing import Any

from casavox.errors import CasavoxError

# dimension name in the graph spec -> (min, opt, max)
DIM_RANGES: dict[str, tuple[int, int, int]] = {
    # Whisper encoder / decoder (names from export/asr/graphs.py)
    "frames": (100, 1000, 3000),
    "enc_len": (50, 500, 1500),
    "new_tokens": (1, 1, 4),
    "past": (0, 16, 228),
    # LLM (names from onnxruntime-genai's builder)
    "batch_size": (1, 1, 1),
    "sequence_length": (1, 1, 512),
    "past_sequence_length": (0, 128, 1024),
    "total_sequence_length": (1, 129, 1024),
}


class ProfileError(CasavoxError, ValueError):
    """A graph input has a dynamic dimension we have no range for."""


def input_profile(shape: list[Any], fixed: dict[str, int] | None = None) -> dict[str, list[int]]:
    """min/opt/max shapes for one input; ``fixed`` pins named dims (e.g. ``kv_cache_dim`` = 64)."""
    fixed = fixed or {}
    out: dict[str, list[int]] = {"min": [], "opt": [], "max": []}
    for dim in shape:
        if isinstance(dim, int):
            lo = opt = hi = dim
        elif dim in fixed:
            lo = opt = hi = int(fixed[dim])
        elif dim in DIM_RANGES:
            lo, opt, hi = DIM_RANGES[dim]
        else:
            raise ProfileError(f"no TensorRT range for dimension '{dim}' (add it to DIM_RANGES)")
        out["min"].append(lo)
        out["opt"].append(opt)
        out["max"].append(hi)
    return out


def graph_profile(
    graph: dict[str, Any], fixed: dict[str, int] | None = None
) -> dict[str, dict[str, list[int]]]:
    """The profile of every input of a graph described in the manifest (``graphs[rel]``)."""
    return {i["name"]: input_profile(i["shape"], fixed) for i in graph["inputs"]}


def ort_shape_options(profile: dict[str, dict[str, list[int]]]) -> dict[str, str]:
    """The same profile as onnxruntime TensorRT EP options (``trt_profile_min_shapes`` ...)."""

    def fmt(key: str) -> str:
        return ",".join(f"{name}:{'x'.join(map(str, p[key]))}" for name, p in profile.items())

    return {
        "trt_profile_min_shapes": fmt("min"),
        "trt_profile_opt_shapes": fmt("opt"),
        "trt_profile_max_shapes": fmt("max"),
    }
