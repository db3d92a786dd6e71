"""The flagalign exception hierarchy.

Every error a user can cause derives from :class:`FlagalignError`; the CLI turns it into one line
on stderr and exit status 2. Messages name the offending file or argument and the fix.
"""

from __future__ import annotations

__all__ = [
    "FlagalignError",
    "InputError",
    "SourceNotFoundError",
    "UnsupportedFormatError",
    "CorruptFileError",
    "UnsafePickleError",
    "MissingDependencyError",
    "ShapeMismatchError",
    "ToleranceError",
]


class FlagalignError(Exception):
    """Base class of every error raised on bad input."""


class InputError(FlagalignError, ValueError):
    """An argument has the wrong type, shape or value."""


class SourceNotFoundError(FlagalignError, FileNotFoundError):
    """A model path or alias does not exist."""


class UnsupportedFormatError(FlagalignError):
    """A file exists but is not a model format flagalign reads (or an unsupported dtype)."""


class CorruptFileError(FlagalignError):
    """A model file is empty, truncated or internally inconsistent."""


class UnsafePickleError(FlagalignError):
    """A pickle that ``torch.load(weights_only=True)`` refuses (not a plain state dict)."""


class MissingDependencyError(FlagalignError, ImportError):
    """An optional package (torch, a packaged model, ...) is needed and not installed."""


class ShapeMismatchError(FlagalignError, ValueError):
    """Two matrices that should share a space do not have compatible shapes."""


class ToleranceError(FlagalignError, ValueError):
    """A result is not well defined at the requested tolerance (say which one to loosen)."""
