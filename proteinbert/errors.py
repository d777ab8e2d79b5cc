"""One exception hierarchy for the whole package.

Every error a user can cause derives from :class:`ProteinBertError`. Subclasses also derive from
the matching built-in (``ValueError``, ``OSError``) so generic handlers keep working.
CLIs map :class:`UsageError` to exit code 2 and every other :class:`ProteinBertError` / ``OSError``
to exit code 1.
"""

from __future__ import annotations


class ProteinBertError(Exception):
    """Base class of every error raised on purpose by proteinbert."""


class InputError(ProteinBertError, ValueError):
    """A value passed by the caller is unusable (names the argument and the value)."""


class UsageError(InputError):
    """Arguments that contradict each other or the file system (an output that is an input, an
    existing output without permission to replace it); the CLIs exit with code 2."""


class OutputBusyError(ProteinBertError, OSError):
    """Another process is writing the same output (its lock file is held)."""


class OutOfSpaceError(ProteinBertError, OSError):
    """A write cannot fit or failed for lack of space (full disk, quota, ``ulimit -f``); names the path.

    >>> import errno
    >>> str(OutOfSpaceError(errno.ENOSPC, "cannot write out.h5: No space left on device"))
    '[Errno 28] cannot write out.h5: No space left on device'
    """


class TrainingDivergedError(ProteinBertError):
    """The loss became NaN or infinite; the last good save is left as it was."""


class FormatError(ProteinBertError, ValueError):
    """A file does not follow its format.

    >>> str(FormatError("expected '>' at start of record", path="x.fa", line=3))
    "Error in file x.fa at line 3: expected '>' at start of record"
    """

    def __init__(self, message: str, path: str | None = None, line: int | None = None):
        self.message = message
        self.path = None if path is None else str(path)
        self.line = line
        where = ""
        if self.path is not None:
            where = f"Error in file {self.path}"
            if line is not None:
                where += f" at line {line}"
            where += ": "
        super().__init__(where + message)


class WeightsError(ProteinBertError, ValueError):
    """A weights file is of the wrong format, size or configuration."""


class UnsafePickleError(WeightsError):
    """A pickle asked for something other than numpy arrays and plain containers."""


class DatasetSchemaError(ProteinBertError, ValueError):
    """An HDF5 dataset file misses datasets or has inconsistent shapes."""


class ExportError(ProteinBertError):
    """An exported model (ONNX, SavedModel) is invalid or does not reproduce the Keras model."""


class MissingDependencyError(ProteinBertError, ImportError):
    """An optional package that this step needs is not installed; the message names the extra."""
