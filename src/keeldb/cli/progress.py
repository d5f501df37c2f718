"""A tiny progress bar on stderr (no dependency). Silent when stderr is not a terminal."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["Progress"]


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
