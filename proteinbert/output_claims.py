"""Who may write an output: the output is not an input and is writable, and one run at a time holds it.

:func:`check_output_path` refuses an output that would destroy an input (the same file through a
symlink or a hard link, a directory holding one) or that cannot be written; :func:`output_lock`
makes a second run on the same output fail at once; :func:`claim_output` does both.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> with claim_output(os.path.join(d, "out.h5"), {"--fasta": os.path.join(d, "in.fa")}) as out:
...     lock_path_for(out).name
'.out.h5.lock'
>>> check_output_path("in.fa", {"--fasta": "in.fa"})
Traceback (most recent call last):
proteinbert.errors.UsageError: --output in.fa is --fasta in.fa: refusing to overwrite an input
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Iterable, Mapping

from .errors import OutputBusyError, UsageError


# -- output checks ------------------------------------------------------------------------------
def _same_path(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)  # follows symlinks; also catches hard links
    except OSError:  # one of them does not exist (yet): compare where they would resolve to
        return a.resolve() == b.resolve()


def _is_within(path: Path, directory: Path) -> bool:
    try:
        path.resolve().relative_to(directory.resolve())
        return True
    except ValueError:
        return False


def check_output_path(output, inputs: Mapping[str, object] | Iterable = (), option: str = "--output",
                      overwrite: bool | None = None, kind: str = "file") -> Path:
    """Refuse an output that would destroy an input or that cannot be written; return it as a Path.

    ``kind``: ``"file"``; ``"dir"``, a directory replaced as a whole; ``"into-dir"``, a directory
    that files are added to.

    * ``inputs`` (``{"--fasta": path, ...}`` or paths): the output may not be (or resolve to,
      through symlinks or hard links) any of them; a ``"dir"`` output may not contain one, and an
      existing output may not lie inside an input directory.
    * A component of the output's parent that is a regular file is named.
    * ``overwrite=False``: an existing output is refused (pass ``None`` when the caller decides).

    Raises :class:`~proteinbert.errors.UsageError` (exit code 2 in the CLIs) naming the option
    and the paths.
    """
    if kind not in ("file", "dir", "into-dir"):
        raise ValueError(f"kind must be 'file', 'dir' or 'into-dir'. Received: {kind!r}")
    out = Path(output)
    items = inputs.items() if isinstance(inputs, Mapping) else ((None, p) for p in inputs)
    for name, value in items:
        if value is None:
            continue
        src = Path(value)
        what = f"{name} {src}" if name else f"the input {src}"
        if _same_path(out, src):
            raise UsageError(f"{option} {out} is {what}: refusing to overwrite an input")
        if kind == "dir" and src.exists() and _is_within(src, out):
            raise UsageError(f"{option} {out} contains {what}: replacing it would delete an input")
        if src.is_dir() and out.exists() and _is_within(out, src):
            raise UsageError(f"{option} {out} lies inside {what}: refusing to overwrite an input")
    for parent in reversed(out.parents):  # the first existing non-directory on the way down
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"cannot write {option} {out}: {parent} is a file, not a directory")
    if out.exists():
        if kind != "file" and not out.is_dir():
            raise UsageError(f"{option} {out} exists and is not a directory")
        if kind == "file" and out.is_dir():
            raise UsageError(f"{option} {out} is a directory; give a file name")
        if overwrite is False:
            raise UsageError(f"{option} {out} exists; pass --overwrite to replace it")
    return out


# -- ownership of an output ---------------------------------------------------------------------
def lock_path_for(output) -> Path:
    """The lock file of ``output`` (file or directory): ``.NAME.lock`` next to it."""
    output = Path(output)
    return output.with_name(f".{output.name}.lock")


_HELD_LOCKS: dict = {}  # lock file -> depth, so a library call inside a CLI's lock does not block on itself


@contextlib.contextmanager
def output_lock(output, what: str = "output"):
    """Hold an exclusive lock on ``output`` (an ``flock`` on ``.NAME.lock`` next to it) for the block.

    A second process asking for the same output gets :class:`~proteinbert.errors.OutputBusyError`
    at once, naming the holder's pid. The lock dies with its process (even on SIGKILL), so a stale
    lock file never blocks anyone; it is removed on release. Re-entrant within one process.
    """
    lock = lock_path_for(os.path.abspath(output))
    key = str(lock)
    if key in _HELD_LOCKS:
        _HELD_LOCKS[key] += 1
        try:
            yield lock
        finally:
            _HELD_LOCKS[key] -= 1
        return
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = _take_lock(lock, output, what)
    _HELD_LOCKS[key] = 1
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        del _HELD_LOCKS[key]
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def _take_lock(lock: Path, output, what: str) -> int:
    """Open and ``flock`` the lock file; its descriptor. Refuses at once if another process holds it."""
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise OutputBusyError(
                f"{what} {output} is being written by another run (pid {holder}; lock file {lock}); "
                "wait for it to finish or choose another output") from None
        # The previous holder unlinks the file on release: make sure ours is still the one on disk.
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextlib.contextmanager
def claim_output(output, inputs: Mapping[str, object] | Iterable = (), option: str = "--output",
                 overwrite: bool | None = None, kind: str = "file"):
    """:func:`check_output_path`, then :func:`output_lock` for the block, then the check again under
    the lock (another run may have finished writing the output meanwhile). Yields the Path."""
    inputs = dict(inputs) if isinstance(inputs, Mapping) else list(inputs)
    out = check_output_path(output, inputs, option, overwrite, kind)
    with output_lock(out, what=option):
        yield check_output_path(output, inputs, option, overwrite, kind)
