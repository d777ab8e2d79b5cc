"""Small file-system helpers shared by every writer: atomic, durable writes; output checks; locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from .errors import OutOfSpaceError, OutputBusyError, UsageError

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
