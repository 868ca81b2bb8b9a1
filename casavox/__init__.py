"""casavox: on-device voice control for the smart home.

The installed package holds the product's parts as subpackages: ``casavox.runtime`` (the device
side: bundle, ASR, intents, the home; numpy + onnxruntime only), ``casavox.edge_app`` (the
conversation turn, the daemon, Wyoming, backends, the CLI) and ``casavox.export`` (the workstation
side: fine-tuning and export; torch). The names below are the few a library user needs; they are
imported on first use, so ``import casavox`` costs nothing and never pulls in torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from casavox.errors import CasavoxError

__version__ = "0.3.0"

# public name -> module that defines it
_LAZY = {
    "Assistant": "casavox.edge_app.assistant",
    "Turn": "casavox.edge_app.assistant",
    "Home": "casavox.runtime.home",
    "load_home": "casavox.runtime.home",
    "Bundle": "casavox.runtime.bundle",
    "verify": "casavox.runtime.bundle",
    "IntentEngine": "casavox.runtime.intents.engine",
    "IntentResult": "casavox.runtime.intents.result",
    "load_transcriber": "casavox.runtime.asr.transcriber",
}

__all__ = [
    "Assistant",
    "Bundle",
    "CasavoxError",
    "Home",
    "IntentEngine",
    "IntentResult",
    "Turn",
    "__version__",
    "load_home",
    "load_transcriber",
    "verify",
]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from casavox.edge_app.assistant import Assistant, Turn
    from casavox.runtime.asr.transcriber import load_transcriber
    from casavox.runtime.bundle import Bundle, verify
    from casavox.runtime.home import Home, load_home
    from casavox.runtime.intents.engine import IntentEngine
    from casavox.runtime.intents.result import IntentResult


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'casavox' has no attribute {name!r}")
