"""Small file-system helpers shared by every writer: atomic, durable writes; output checks; locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from .errors import OutputBusyError, UsageError

logger = logging.getLogger(__name__)


# -- durability ---------------------------------------------------------------------------------
def fsync_file(path) -> None:
    """Flush one file's data to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path) -> None:
    """Flush a directory's entries (a rename inside it survives a power loss only after this)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # some platforms cannot open directories; nothing to flush there
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EBADF):  # file systems without directory fsync
            raise
    finally:
        os.close(fd)


def fsync_tree(path) -> None:
    """fsync a file, or every file and directory below a directory (the directory last)."""
    path = Path(path)
    if not path.is_dir():
        fsync_file(path)
        return
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            fsync_file(os.path.join(root, name))
        fsync_dir(root)


@contextlib.contextmanager
def atomic_write_path(path, suffix: str | None = None):
    """Yield a temporary path next to ``path``; rename it onto ``path`` only on success.

    On any exception the temporary file is removed and ``path`` is left as it was, so a reader
    never sees a half-written file under the final name. The data are fsynced before the rename
    and the directory after it, so a power loss leaves the old file or the complete new one.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with atomic_write_path(os.path.join(d, "out.txt")) as tmp:
    ...     _ = open(tmp, "w").write("done")
    >>> open(os.path.join(d, "out.txt")).read()
    'done'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Keep the real suffix last: some writers (Keras, h5py) check the extension.
    suffix = "".join(path.suffixes[-2:]) if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial" + suffix, dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # writers create the file themselves
    try:
        yield tmp
        fsync_tree(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            if os.path.isdir(tmp):
                shutil.rmtree(tmp)
            else:
                os.unlink(tmp)
        raise


def require_space(path, nbytes: int, what: str = "the output") -> None:
    """Refuse (``OSError`` ENOSPC/EFBIG) to start writing ``nbytes`` at ``path`` that cannot fit.

    Counts the free space of the file system and the process's file-size limit (``ulimit -f``).
    Writers whose libraries cannot recover from a failed write (HDF5) check before they start.
    """
    import resource

    directory = Path(path).parent
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if nbytes > free:
        raise OSError(errno.ENOSPC, f"{what} {path} needs about {nbytes / 1e6:,.1f} MB but only "
                                    f"{free / 1e6:,.1f} MB are free in {directory}")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and nbytes > limit:
        raise OSError(errno.EFBIG, f"{what} {path} needs about {nbytes / 1e6:,.1f} MB but files are limited to "
                                   f"{limit / 1e6:,.1f} MB (ulimit -f)")


def remove_stale_partials(path) -> list[Path]:
    """Remove what an earlier, killed :func:`atomic_write_path` onto ``path`` left behind.

    Call it only while holding :func:`output_lock` on ``path``: then no live writer owns them.
    """
    path = Path(path)
    removed = []
    if path.parent.is_dir():
        for p in path.parent.glob(f".{glob_escape(path.name)}.*.partial*"):
            removed.append(p)
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()
    for p in removed:
        logger.info("removed %s, left by an earlier run that was killed", p)
    return removed


def glob_escape(name: str) -> str:
    """``name`` with glob metacharacters quoted (a file name is not a pattern)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


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
            break
        os.close(fd)
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


@contextlib.contextmanager
def claim_output(output, inputs: Mapping[str, object] | Iterable = (), option: str = "--output",
                 overwrite: bool | None = None, kind: str = "file"):
    """:func:`check_output_path`, then :func:`output_lock` for the block, then the check again under
    the lock (another run may have finished writing the output meanwhile). Yields the Path."""
    inputs = dict(inputs) if isinstance(inputs, Mapping) else list(inputs)
    out = check_output_path(output, inputs, option, overwrite, kind)
    with output_lock(out, what=option):
        yield check_output_path(output, inputs, option, overwrite, kind)
