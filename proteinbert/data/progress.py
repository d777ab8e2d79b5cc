"""The records progress bar of the dataset builder: a count and a rate, and how far through the input file."""

from __future__ import annotations

from tqdm.auto import tqdm


class RecordProgress:
    """A records bar (count and rate) that also shows how far through the stored file we are.

    ``stream``: a reader with ``size`` and ``raw_bytes_read`` (bytes of the file as stored).
    """

    def __init__(self, desc: str, enabled: bool, stream=None, total: int | None = None):
        self.bar = tqdm(desc=desc, unit=" rec", unit_scale=True, disable=not enabled, total=total,
                        mininterval=1.0, smoothing=0.05, dynamic_ncols=True)
        self.stream = stream
        self._pending = 0

    def tick(self, n: int = 1) -> None:
        self._pending += n
        if self._pending >= 2048:
            self.flush()

    def flush(self) -> None:
        self.bar.update(self._pending)
        self._pending = 0
        if self.stream is not None and self.stream.size:
            self.bar.set_postfix_str(f"{100.0 * self.stream.raw_bytes_read / self.stream.size:.0f}% of input",
                                     refresh=False)

    def close(self) -> None:
        self.flush()
        self.bar.close()
