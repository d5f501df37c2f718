"""A tiny progress bar on stderr (no dependency). Silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["PhaseProgress", "Progress"]


class Progress:
    """Draws ``label [#####.....] done/total rows  rate/s  eta`` on one stderr line.

    ``total`` may be None (unknown: no bar, no ETA). Redraws at most every
    ``interval_s``. When ``stream`` is not a TTY (or ``enabled`` is False) nothing is
    drawn; :meth:`close` then prints nothing either, so logs and pipes stay clean.
    """

    def __init__(
        self,
        total: int | None,
        label: str = "",
        *,
        stream: TextIO | None = None,
        enabled: bool | None = None,
        interval_s: float = 0.2,
        width: int = 30,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total
        self.label = label
        self.done = 0
        self.interval_s = interval_s
        self.width = width
        self._start = time.monotonic()
        self._last_draw = 0.0

    def advance(self, n: int) -> None:
        """Count ``n`` more items done; redraw if the interval passed."""
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last_draw >= self.interval_s:
            self._last_draw = now
            self._draw(now)

    def render(self, now: float | None = None) -> str:
        """The line as it would be drawn now (for tests)."""
        elapsed = max((now or time.monotonic()) - self._start, 1e-9)
        rate = self.done / elapsed
        parts = [self.label] if self.label else []
        if self.total:
            frac = min(self.done / self.total, 1.0)
            filled = int(frac * self.width)
            parts.append("[" + "#" * filled + "." * (self.width - filled) + "]")
            parts.append(f"{self.done:,}/{self.total:,}")
            if rate > 0 and self.done < self.total:
                parts.append(f"eta {(self.total - self.done) / rate:,.0f}s")
        else:
            parts.append(f"{self.done:,}")
        parts.append(f"{rate:,.0f}/s")
        return " ".join(parts)

    def _draw(self, now: float) -> None:
        self.stream.write("\r" + self.render(now) + "\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        """Draw the final state and end the line (only when enabled)."""
        if self.enabled:
            self._draw(time.monotonic())
            self.stream.write("\n")
            self.stream.flush()


class PhaseProgress:
    """A ``progress(phase, done, total)`` callback for :meth:`Collection.compact` that
    draws one :class:`Progress` line per phase on stderr (only on a terminal).

    The engine reports each phase when it starts (``done`` 0) and when it ends (``done
    == total``); ``indexing`` also after every chunk of rows inserted into the graph
    (10,000), so its bar fills as the HNSW graph is built, while the other phases jump
    from empty to full. Phases of
    no rows are not drawn; a phase that ends after a nested one (``vacuuming`` around
    ``indexing`` and ``writing``) is not drawn again.
    """

    def __init__(
        self, label: str = "", *, stream: TextIO | None = None, enabled: bool | None = None
    ) -> None:
        self.label = label
        self.stream = stream
        self.enabled = enabled
        self.phases: list[str] = []  # every phase started, in order (for tests and logs)
        self._phase = ""
        self._current: Progress | None = None

    def __call__(self, phase: str, done: int, total: int) -> None:
        if total <= 0:
            return
        if done == 0:
            self.close()
            self.phases.append(phase)
            self._phase = phase
            label = f"{self.label}{phase}" if self.label else phase
            self._current = Progress(total, label, stream=self.stream, enabled=self.enabled)
            self._current.advance(0)  # drawn at once: the phase may take minutes
        elif self._current is not None and self._phase == phase:
            self._current.advance(done - self._current.done)
            if done >= total:
                self.close()

    def close(self) -> None:
        """End the line of the phase in progress, if any."""
        if self._current is not None:
            self._current.close()
            self._current = None
