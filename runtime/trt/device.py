"""Which GPU and TensorRT this is, and whether an engine built elsewhere may run here.

A TensorRT engine is only valid on the GPU model (compute capability) and the TensorRT version it was
built with; loading a foreign one fails deep inside TensorRT or, worse, runs slowly. So the manifest
records where each engine was built and the runtime compares before loading.
"""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class GpuFacts:
    name: str  # "NVIDIA H100 80GB HBM3", "Orin (nvgpu)"
    compute_capability: str  # "9.0", "8.7"
    driver: str
    cuda: str  # CUDA runtime the TensorRT build uses
    tensorrt: str  # TensorRT version, "" when not installed

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def _nvidia_smi() -> tuple[str, str, str] | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    if not out:
        return None
    name, cap, driver = (part.strip() for part in out[0].split(",")[:3])
    return name, cap, driver


def _jetson() -> tuple[str, str, str] | None:
    """Jetson boards have no nvidia-smi; the device tree and L4T release say what they are."""
    model = Path("/proc/device-tree/model")
    release = Path("/etc/nv_tegra_release")
    if not model.exists():
        return None
    name = model.read_text(errors="replace").strip("\x00 \n")
    cap = "8.7" if "Orin" in name else "7.2" if "Xavier" in name else ""
    driver = release.read_text(errors="replace").split(",")[0].strip("# \n") if release.exists() else ""
    return name, cap, driver


def gpu_facts() -> GpuFacts | None:
    """This machine's first NVIDIA GPU and TensorRT/CUDA versions, or None without a GPU."""
    found = _nvidia_smi() or _jetson()
    if found is None:
        return None
    name, cap, driver = found
    trt_version, cuda = "", ""
    try:
        import tensorrt as trt

        trt_version = trt.__version__
    except ImportError:
        pass
    try:
        from cuda.bindings import runtime as cudart

        err, version = cudart.cudaRuntimeGetVersion()
        cuda = f"{version // 1000}.{version % 1000 // 10}" if not int(err) else ""
    except ImportError:
        pass
    return GpuFacts(name, cap, driver, cuda, trt_version)


def engine_mismatch(built_on: dict[str, str], here: GpuFacts | None) -> str | None:
    """Why an engine built on ``built_on`` (the manifest's record) must not run ``here``, or None."""
    if here is None:
        return "no NVIDIA GPU here"
    if not here.tensorrt:
        return "TensorRT is not installed here"
    if built_on.get("compute_capability") != here.compute_capability:
        return (
            f"built for compute capability {built_on.get('compute_capability')} ({built_on.get('name')}), "
            f"this GPU is {here.compute_capability} ({here.name})"
        )
    if built_on.get("tensorrt") != here.tensorrt:
        return f"built with TensorRT {built_on.get('tensorrt')}, this machine has TensorRT {here.tensorrt}"
    return None
