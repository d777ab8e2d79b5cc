"""Stopping a run between steps on SIGINT or SIGTERM, instead of in the middle of one.

>>> with InterruptFlag() as interrupt:  # a training loop checks interrupt.set after each step
...     interrupt.set
False
"""

from __future__ import annotations

import logging
import signal
import threading

logger = logging.getLogger(__name__)


class InterruptFlag:
    """Turns SIGINT and SIGTERM into a flag checked between steps (so a step is never cut in half
    and the run saves before it ends, as a scheduler's SIGTERM expects). A second signal raises
    ``KeyboardInterrupt`` at once. Outside the main thread no handler is installed."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.set = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.getsignal(sig)
                signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:  # a second signal: stop at once
            raise KeyboardInterrupt
        logger.warning("%s received: stopping after this step and saving (send it again to abort)",
                       signal.Signals(signum).name)
        self.set = True

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            if previous is not None:  # None: a handler installed outside Python, not restorable
                signal.signal(sig, previous)
