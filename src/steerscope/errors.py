"""Errors steerscope raises on bad input. Every message says what to do about it.

The CLI prints ``SteerscopeError`` messages as one line and exits with code 2.
"""

from __future__ import annotations


class SteerscopeError(Exception):
    """Base class: a problem the user can fix; the message says how."""


class ModelNotFoundError(SteerscopeError):
    """A model id or path could not be resolved offline."""


class ArchitectureError(SteerscopeError):
    """steerscope does not know where this model keeps its decoder blocks."""


class VectorFileError(SteerscopeError):
    """A vector file is missing, truncated, foreign or from a newer format."""


class RunFileError(SteerscopeError, ValueError):
    """A file in a run directory (JSON, JSONL, CSV) is unreadable: not UTF-8, corrupt, truncated or nested too
    deeply. The message names the file; re-run the command that wrote it (or delete the file)."""


class ShapeMismatchError(SteerscopeError):
    """A vector's width disagrees with the model's (both sizes are in the message)."""


class InvalidArgumentError(SteerscopeError, ValueError):
    """An argument is out of range or malformed."""


class UnverifiedVectorFileWarning(UserWarning):
    """A vector file without checksums (written before steerscope recorded them) was loaded unverified."""


class StopForward(Exception):
    """Raised inside a hook to end a forward pass early (caught by the caller that installed the hook)."""


class SteeringPositionError(SteerscopeError):
    """The absolute positions of a forward call's tokens cannot be worked out (an unknown cache type)."""
