"""The one base class of every error a user can cause and fix.

Each subclass's message names the file (or flag) at fault and says what to do. The CLI
turns these into one `error:` line and exit status 2, the app into a message on the page;
anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake in what the user gave us (a file, a flag, an index); never a bug."""


class UnknownVideoError(UserError, KeyError):
    """An id that is not in the index."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IndexFileError(UserError):
    """An index that cannot be opened or used; the message names the folder or file and what to do."""
