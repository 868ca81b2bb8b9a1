"""The example home (``home.yaml``) and daemon config (``casavox.toml``), shipped as package data.

They are the defaults of ``casavox run`` and ``casavox demo``, so the commands work from any
directory; :func:`example_path` is how code finds them.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def example_path(name: str) -> Path:
    """The installed copy of an example file (``"home.yaml"``, ``"casavox.toml"``)."""
    return Path(str(files(__name__) / name))
