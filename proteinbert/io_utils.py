"""Writes that survive failures: atomic and durable, checked for space, HDF5 files that fail cleanly.

* :func:`atomic_write_path` writes under a temporary name renamed onto the output only on success
  (fsynced), and :func:`remove_stale_partials` removes what a killed run left;
* :func:`require_space` refuses a write the disk cannot hold, and :func:`naming_space_errors`
  turns a full disk met on the way into an :class:`~proteinbert.errors.OutOfSpaceError` naming
  the file;
* :func:`writing_h5` / :func:`reserve_h5` / :func:`abort_h5` keep HDF5, which cannot recover
  from a full disk, away from one.

Who may write an output (the output is not an input; one run at a time) is
:mod:`proteinbert.output_claims`; its names are importable from here too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

from .errors import OutOfSpaceError
from .output_claims import check_output_path, claim_output, lock_path_for, output_lock

__all__ = [
    "NO_SPACE_ERRNOS", "abort_h5", "atomic_write_path", "check_output_path", "claim_output", "fsync_dir",
    "fsync_file", "fsync_tree", "glob_escape", "lock_path_for", "naming_space_errors", "output_lock",
    "remove_stale_partials", "require_space", "reserve_h5", "writing_h5",
]

logger = logging.getLogger(__name__)


# -- durable, atomic writes ---------------------------------------------------------------------
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
        with naming_space_errors(path):
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
    """``name`` with glob metacharacters quoted (a file name is not a pattern).

    >>> glob_escape("run[1]*.h5")
    'run[[]1][*].h5'
    """
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


# -- disk space ---------------------------------------------------------------------------------
def require_space(path, nbytes: int, what: str = "the output", reclaimed: int = 0) -> None:
    """Refuse (:class:`~proteinbert.errors.OutOfSpaceError`, errno ENOSPC/EFBIG) to start writing
    a file of ``nbytes`` at ``path`` that cannot fit.

    Counts the free space of the file system and the process's file-size limit (``ulimit -f``).
    ``reclaimed``: bytes the writer deletes on the same file system while it writes (scratch it
    consumes), which need not be free at the start. Writers whose libraries cannot recover from a
    failed write (HDF5) check before they start.

    >>> require_space("out.bin", 1)
    """
    import resource

    directory = Path(path).parent
    directory.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(directory).free
    if nbytes - reclaimed > free:
        raise OutOfSpaceError(errno.ENOSPC, f"{what} {path} needs about {(nbytes - reclaimed) / 1e6:,.1f} MB but "
                                            f"only {free / 1e6:,.1f} MB are free in {directory}")
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if limit != resource.RLIM_INFINITY and nbytes > limit:
        raise OutOfSpaceError(errno.EFBIG, f"{what} {path} needs about {nbytes / 1e6:,.1f} MB but files are "
                                           f"limited to {limit / 1e6:,.1f} MB (ulimit -f)")


#: errno values that mean "no room for this write": full disk, quota, file-size limit.
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_HDF5_ERRNO = re.compile(r"errno = (\d+)")


def _space_errno(exc: BaseException) -> int | None:
    """The no-space errno behind ``exc`` (an ``OSError``, or HDF5's text "errno = 28"), or None."""
    code = getattr(exc, "errno", None) if isinstance(exc, OSError) else None
    if code is None and isinstance(exc, (OSError, RuntimeError, ValueError)):
        m = _HDF5_ERRNO.search(str(exc))
        code = int(m.group(1)) if m else None
    return code if code in NO_SPACE_ERRNOS else None


@contextlib.contextmanager
def naming_space_errors(path, what: str = "cannot write"):
    """Turn a full-disk error in the block into :class:`~proteinbert.errors.OutOfSpaceError`
    naming ``path`` (Python's file writes and HDF5 leave the file out, or bury it in a long text).

    >>> import errno
    >>> with naming_space_errors("out.h5"):
    ...     raise OSError(errno.ENOSPC, "No space left on device")
    Traceback (most recent call last):
    proteinbert.errors.OutOfSpaceError: [Errno 28] cannot write out.h5: No space left on device
    """
    try:
        yield
    except OutOfSpaceError:
        raise
    except (OSError, RuntimeError) as exc:
        code = _space_errno(exc)
        if code is None:
            raise
        raise OutOfSpaceError(code, f"{what} {path}: {os.strerror(code)}") from exc


# -- HDF5 writes that fail cleanly -----------------------------------------------------------
@contextlib.contextmanager
def writing_h5(path, mode: str = "w", name=None, reserve: int = 0, **kwargs):
    """Yield an ``h5py.File`` opened for writing that fails cleanly, then flush and close it.

    HDF5 cannot recover from a write that failed for lack of space: it may crash the process in
    that very write (variable-length strings) or at exit. So disk space is reserved for the file
    ahead of the writes (``reserve`` bytes here, or more on the way with :func:`reserve_h5`): a disk
    that cannot hold them fails there, before HDF5 meets it, and writes within them cannot fail for
    lack of space. On an error in the block the file is closed (into its reserved space) and the
    error propagates; should a write of HDF5's itself fail, the file is truncated instead (it is
    garbage now) and closed once with its remaining writes sent to ``/dev/null``. The first error
    propagates (a full disk as :class:`~proteinbert.errors.OutOfSpaceError` naming ``name``, by
    default ``path``). Write into a temporary name (:func:`atomic_write_path`), which then deletes
    the file. Space reserved but not used is given back at the end.
    """
    import h5py

    name = path if name is None else name
    with naming_space_errors(name):
        h5 = h5py.File(path, mode, **kwargs)
    try:
        with naming_space_errors(name):
            if reserve > 0:
                reserve_h5(h5, reserve, name)
            yield h5
            try:
                h5.flush()
            except (RuntimeError, ValueError) as exc:  # h5py reports a failed flush as any of these
                if _space_errno(exc) is None:
                    raise OSError(f"{name}: could not finish writing ({str(exc).splitlines()[0]})") from exc
                raise
    except BaseException as exc:
        abort_h5(h5, hdf5_failed=_hdf5_write_failed(exc))
        raise
    try:
        h5.close()
    except (RuntimeError, ValueError) as exc:
        raise OSError(f"{name}: could not finish writing ({str(exc).splitlines()[0]})") from exc
    _release_reserved(path)


def reserve_h5(h5, nbytes: int, name=None) -> bool:
    """Make sure the first ``nbytes`` of the open ``h5py.File`` ``h5`` have disk space allocated,
    without changing its size (``fallocate`` with ``FALLOC_FL_KEEP_SIZE``, Linux).

    Raises :class:`~proteinbert.errors.OutOfSpaceError` if the disk cannot hold them; returns
    ``False`` where the system or file system cannot reserve (then nothing is guaranteed).
    """
    fallocate = _keep_size_fallocate()
    if fallocate is None:
        return False
    fd = h5.id.get_vfd_handle()
    if fallocate(fd, 1, 0, int(nbytes)) == 0:  # 1: FALLOC_FL_KEEP_SIZE
        return True
    import ctypes

    code = ctypes.get_errno()
    if code in NO_SPACE_ERRNOS:
        raise OutOfSpaceError(code, f"cannot reserve {nbytes / 1e6:,.1f} MB for {name or h5.filename}: "
                                    f"{os.strerror(code)}")
    logger.debug("could not reserve %d bytes for %s: %s", nbytes, name or h5.filename, os.strerror(code))
    return False  # EOPNOTSUPP and the like: a file system that cannot allocate ahead


_FALLOCATE: list = []


def _keep_size_fallocate():
    """libc's ``fallocate(fd, mode, offset, len)``, or None where there is none (not Linux)."""
    if not _FALLOCATE:
        function = None
        try:
            import ctypes

            function = ctypes.CDLL(None, use_errno=True).fallocate
            function.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            function.restype = ctypes.c_int
        except (OSError, AttributeError):
            function = None
        _FALLOCATE.append(function)
    return _FALLOCATE[0]


def _release_reserved(path) -> None:
    """Free the blocks reserved past the end of ``path`` (shrinking a file frees all beyond its end)."""
    try:
        size = os.path.getsize(path)
        os.truncate(path, size + 1)
        os.truncate(path, size)
    except OSError as exc:  # only disk space is at stake, not the file's content
        logger.debug("could not release the space reserved for %s: %s", path, exc)


_HDF5_WRITE_FAILED = re.compile(r"write failed|errno = \d+")


def _hdf5_write_failed(exc: BaseException) -> bool:
    """Whether HDF5 itself failed a write on the way to ``exc`` (its messages say so)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (OSError, RuntimeError, ValueError)) and _HDF5_WRITE_FAILED.search(str(exc)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def abort_h5(h5, hdf5_failed: bool = True) -> None:
    """Close an ``h5py.File`` after an error without raising (see :func:`writing_h5`).

    ``hdf5_failed=False`` (the error was not HDF5's, e.g. a signal or a scratch file): a plain close,
    which still has the space reserved for the file and reads back what HDF5 needs.
    """
    if not hdf5_failed:
        try:
            h5.close()
        except (OSError, RuntimeError, ValueError):
            pass  # never close again: HDF5 may crash on a second close of a file it failed to close
        return
    try:
        fd = h5.id.get_vfd_handle()
        os.ftruncate(fd, 0)
        # HDF5 still holds what it failed to write and writes it again on close (and at exit, where a
        # failure crashes the process): let those writes succeed into /dev/null instead of the disk.
        devnull = os.open(os.devnull, os.O_RDWR)
        try:
            os.dup2(devnull, fd)
        finally:
            os.close(devnull)
    except (OSError, RuntimeError, ValueError, TypeError):
        pass
    try:
        h5.close()
    except (OSError, RuntimeError, ValueError):
        pass  # never close again: HDF5 may crash on a second close of a file it failed to close
