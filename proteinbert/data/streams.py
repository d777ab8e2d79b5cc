"""Read a (possibly gzipped) input file on a background thread, hashing it on the way.

The thread reads the raw file, feeds SHA-256 and, for gzip, zlib; both release the GIL, so on a
two-core machine decompression and hashing run beside the parser instead of in front of it. The
consumer sees a plain binary file object of decompressed bytes (``read``/``readinto``), usable by
lxml's ``iterparse`` or, wrapped in ``io.TextIOWrapper``, by the FASTA and TSV readers.

Truncated or corrupt gzip data raise :class:`~proteinbert.errors.FormatError` naming the file.

>>> import gzip, os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "x.txt.gz")
>>> with gzip.open(path, "wb") as f:
...     _ = f.write(b"hello\\n" * 3)
>>> with ThreadedInput(path) as stream:
...     stream.read()
b'hello\\nhello\\nhello\\n'
>>> stream.digest == file_sha256(path)
True
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import threading
import zlib
from pathlib import Path

from ..errors import FormatError

_GZIP_MAGIC = b"\x1f\x8b"
_END = object()


def file_sha256(path, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


class ThreadedInput(io.RawIOBase):
    """Binary reader of a file's decompressed content, produced by a background thread.

    After the whole file has been consumed, ``digest`` is the SHA-256 of the file as stored and
    ``size`` its size in bytes. ``raw_bytes_read`` tracks progress through the stored file.
    """

    def __init__(self, path, block_size: int = 1 << 20, max_queued: int = 8):
        super().__init__()
        self.path = str(path)
        self.size = os.path.getsize(self.path)
        self.raw_bytes_read = 0
        self.digest: str | None = None
        self._block = block_size
        self._queue: queue.Queue = queue.Queue(maxsize=max_queued)
        self._stop = threading.Event()
        self._buf = memoryview(b"")
        self._done = False
        with open(self.path, "rb") as f:
            self.compressed = f.read(2) == _GZIP_MAGIC
        self._thread = threading.Thread(target=self._produce, name=f"read:{Path(self.path).name}", daemon=True)
        self._thread.start()

    # -- producer thread --------------------------------------------------------------------------
    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            sha = hashlib.sha256()
            decomp = zlib.decompressobj(wbits=31) if self.compressed else None
            member_has_data = False
            with open(self.path, "rb") as f:
                while not self._stop.is_set():
                    raw = f.read(self._block)
                    if not raw:
                        break
                    sha.update(raw)
                    self.raw_bytes_read += len(raw)
                    if decomp is None:
                        if not self._put(raw):
                            return
                        continue
                    data = raw
                    while data:
                        # Bounded output per call: a small highly-compressed block cannot blow up memory.
                        out = decomp.decompress(data, 1 << 20)
                        member_has_data = True
                        if out and not self._put(out):
                            return
                        if decomp.eof:
                            data = decomp.unused_data
                            if data:  # concatenated gzip members (bgzip, cat a.gz b.gz)
                                decomp = zlib.decompressobj(wbits=31)
                                member_has_data = False
                        else:
                            data = decomp.unconsumed_tail
            if self._stop.is_set():
                return
            if decomp is not None:
                tail = decomp.flush()
                if tail and not self._put(tail):
                    return
                if not decomp.eof and member_has_data:
                    raise FormatError("truncated gzip file: the compressed stream ends before its end marker "
                                      f"(after {self.raw_bytes_read:,} bytes)", self.path)
            self.digest = sha.hexdigest()
            self._put(_END)
        except zlib.error as exc:
            self._put(FormatError(f"corrupt gzip data after about {self.raw_bytes_read:,} compressed bytes ({exc})",
                                  self.path))
        except BaseException as exc:  # handed to the consumer, which re-raises it in its own thread
            self._put(exc)

    # -- consumer side ----------------------------------------------------------------------------
    def _next_chunk(self) -> bool:
        if self._done:
            return False
        item = self._queue.get()
        if item is _END:
            self._done = True
            return False
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._buf = memoryview(item)
        return True

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if not self._buf and not self._next_chunk():
            return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [bytes(self._buf)]
            self._buf = memoryview(b"")
            while self._next_chunk():
                parts.append(bytes(self._buf))
                self._buf = memoryview(b"")
            return b"".join(parts)
        if not self._buf and not self._next_chunk():
            return b""
        # Hand over at most one queued chunk: lxml and BufferedReader both accept short reads.
        out = self._buf[:size]
        self._buf = self._buf[size:]
        return bytes(out)

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
            # Drain so a producer blocked on a full queue notices the stop flag.
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=5)
        super().close()

