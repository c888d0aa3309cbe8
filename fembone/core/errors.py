"""fembone's own error types.

Every problem with user input (case files, meshes, parameters) raises
:class:`InputError` with a one-line message that names the key path, file or
value at fault.  The CLI prints that line and exits with status 2; nothing else
is shown to the user.
"""

from __future__ import annotations


class FemboneError(Exception):
    """Base class of every error fembone raises on purpose."""


class InputError(FemboneError, ValueError):
    """Bad user input: a malformed case file, mesh or parameter.

    ``where`` is the key path (``loadcases.tip[0].where.plane``), file name or
    element id the message is about; it is prefixed to the message.
    """

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        self.message = message
        text = f"{where}: {message}" if where else message
        super().__init__(" ".join(text.split()))  # always one line


class SolverError(FemboneError, RuntimeError):
    """The linear solve failed (singular system, no convergence)."""


class ModelError(InputError):
    """The model is well-formed but cannot be solved as posed (e.g. a free rigid-body motion)."""


def show(value) -> str:
    """A short repr of a user value for an error message (bounded, even for huge or recursive data)."""
    return _SHORT.repr(value)


def _short_repr():
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxdict, r.maxlist, r.maxtuple, r.maxset = 2, 4, 4, 4, 4
    r.maxstring, r.maxother, r.maxlong = 60, 60, 40
    return r


_SHORT = _short_repr()
