"""Record sources for the dataset builder: one parser per input kind, run in-process or in a worker.

Each source yields plain tuples (cheap to pickle between processes):

=========  ==================================================
uniref     (cluster id, entry name, accession, go_ids, line)
uniprot    (entry name, accession, seq, go_ids, line)
tsv        (accession, accession, accession, go_ids, line)
fasta      (id, seq, line)
=========  ==================================================

The worker is a fresh interpreter (``spawn``): forking a process that already runs threads (the
decompression threads of other sources, TensorFlow's pools when the pipeline builds a dataset)
can leave the child waiting on a lock no thread will release. The child only parses and talks
through its queue; it never touches the parent's SQLite or HDF5 handles.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import queue
import signal
from pathlib import Path
from typing import Iterator

from ..errors import FormatError, InputError
from .fasta import parse_fasta
from .go_tsv import parse_go_tsv
from .streams import ThreadedInput
from .uniprot_xml import parse_uniprot_xml, parse_uniref_xml

def _records(kind: str, stream: ThreadedInput, path: str) -> Iterator[tuple]:
    """Plain tuples (cheap to pickle) from one input, per kind:

    uniref → (key, name, accession, go_ids, line); uniprot → (name, accession, seq, go_ids, line);
    tsv → (accession, accession, accession, go_ids, line); fasta → (id, seq, line).
    """
    if kind == "uniref":
        return ((r.key, r.name, r.accession, r.go_ids, r.line) for r in parse_uniref_xml(stream, path, with_sequence=False))
    if kind == "uniprot":
        return ((r.name, r.accession, r.seq, r.go_ids, r.line) for r in parse_uniprot_xml(stream, path))
    text = io.TextIOWrapper(io.BufferedReader(stream, buffer_size=1 << 20), encoding="utf-8", newline=None)
    if kind == "tsv":
        return ((r.accession, r.accession, r.accession, r.go_ids, r.line) for r in parse_go_tsv(text, path))
    if kind == "fasta":
        return ((r.id, r.seq, r.line) for r in parse_fasta(text, path))
    raise InputError(f"unknown record source kind {kind!r}")


def _worker_main(kind: str, path: str, out, batch: int) -> None:
    """Child process: parse ``path`` and send batches of tuples; errors travel back as data."""
    # The parent may have made SIGTERM raise (clean-up there); here it must just end the process,
    # as RecordSource.__exit__ expects of terminate().
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with ThreadedInput(path) as stream:
            buf = []
            for rec in _records(kind, stream, path):
                buf.append(rec)
                if len(buf) >= batch:
                    out.put(("batch", buf, stream.raw_bytes_read))
                    buf = []
            out.put(("batch", buf, stream.raw_bytes_read))
            out.put(("end", stream.digest, stream.raw_bytes_read))
    except FormatError as exc:
        out.put(("error", "format", exc.message, exc.path, exc.line))
    except KeyboardInterrupt:
        out.put(("error", "interrupted", "interrupted", None, None))
    except Exception as exc:  # reported to the parent, which raises it as an error of this file
        out.put(("error", type(exc).__name__, str(exc), None, None))


_WORKER_CONTEXT = "spawn"


class RecordSource:
    """Iterate the records of one input file; ``raw_bytes_read``/``size``/``digest`` as ThreadedInput.

    With ``parallel`` the parser runs in a worker process (its decompression on a thread there),
    so parsing and the builder's own work (GO resolution, SQLite, spooling) use both cores.
    """

    def __init__(self, kind: str, path: Path, parallel: bool):
        self.kind, self.path, self.parallel = kind, str(path), parallel
        self.size = os.path.getsize(path)
        self.raw_bytes_read = 0
        self.digest: str | None = None
        self._proc = None
        self._stream = None

    def __enter__(self):
        if self.parallel:
            ctx = multiprocessing.get_context(_WORKER_CONTEXT)
            self._queue = ctx.Queue(maxsize=16)
            self._proc = ctx.Process(target=_worker_main, args=(self.kind, self.path, self._queue, 2000),
                                     name=f"parse:{Path(self.path).name}", daemon=True)
            self._proc.start()
        else:
            self._stream = ThreadedInput(self.path)
        return self

    def __iter__(self):
        if self._proc is None:
            yield from _records(self.kind, self._stream, self.path)
            self.raw_bytes_read, self.digest = self._stream.raw_bytes_read, self._stream.digest
            return
        while True:
            try:
                msg = self._queue.get(timeout=5.0)
            except queue.Empty:
                if not self._proc.is_alive():
                    raise FormatError(f"the reader process stopped unexpectedly (exit code {self._proc.exitcode})",
                                      self.path) from None
                continue
            if msg[0] == "batch":
                self.raw_bytes_read = msg[2]
                yield from msg[1]
            elif msg[0] == "end":
                self.digest, self.raw_bytes_read = msg[1], msg[2]
                return
            else:
                _, what, message, path, line = msg
                if what == "format":
                    raise FormatError(message, path, line)
                if what == "interrupted":
                    raise KeyboardInterrupt
                raise FormatError(f"cannot read ({what}: {message})", self.path)

    def __exit__(self, *exc):
        if self._stream is not None:
            self._stream.close()
        if self._proc is not None:
            if self._proc.is_alive():
                self._proc.terminate()
            self._proc.join(timeout=10)
            self._queue.cancel_join_thread()
            self._queue.close()
        return False
