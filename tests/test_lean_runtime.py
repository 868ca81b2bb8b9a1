"""The device side never imports torch or transformers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_importing_every_runtime_module_leaves_torch_out() -> None:
    modules = sorted(
        "casavox." + ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "runtime").rglob("*.py")
    )
    assert "casavox.runtime.asr.transcriber" in modules
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "import casavox.edge_app.cli\n"
        # What runtime modules import lazily, at their first command:
        "import llguidance, llguidance.numpy, hassil, home_assistant_intents, rapidfuzz, soxr, soundfile\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"runtime pulled in: {out.stdout.strip()}"
