"""The one error base: everything a user can cause (a bad home file, a broken bundle, a missing
microphone, a rejected token) is a :class:`CasavoxError` whose message is one line naming what to
fix. The CLI catches this one name; a library user can tell "casavox refused" from a bug, which
stays an ordinary exception with its traceback (hassil's ``errors.py`` is the model).
"""

from __future__ import annotations


class CasavoxError(Exception):
    """Base of every error casavox reports to a user as one line."""
