"""What a box is installed with: the systemd unit and the offline installer (``casavox pack``).

Shipped as package data so `casavox pack` finds them from any directory; ``install.py`` is standard
library only and is never imported by casavox itself (it runs on the box before casavox exists).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def deploy_path(name: str) -> Path:
    """The installed copy of a deploy file (``"casavox.service"``, ``"install.py"``, ``"install.sh"``)."""
    return Path(str(files(__name__) / name))
