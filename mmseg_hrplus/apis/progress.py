"""A progress line with a rate (frames per second) that reads well with and without a terminal."""
import sys
import time
from typing import Optional, TextIO


class RateProgress:
    """Counts items done out of ``total`` and reports ``done/total unit, rate unit/s, ETA``.

    On a terminal the line is redrawn in place (``\\r``) at most every ``tty_interval`` seconds;
    on anything else (a log file, a CI pipe) a new line is printed each time another tenth of
    ``total`` is done (every ``chunk`` items when the total is unknown), so the log holds about
    ten lines instead of one line of carriage returns. :meth:`close` prints the final count,
    elapsed time and overall rate.

    Args:
        total: number of items expected; ``None`` or < 1 if unknown (no percentage or ETA).
        label: printed first, e.g. the video's name.
        unit: what an item is called (``'frames'``).
        stream: where to print (default: ``sys.stderr`` at construction time).
        tty_interval: seconds between redraws on a terminal.
        chunk: items between lines off a terminal when the total is unknown.
    """

    def __init__(self, total: Optional[int], label: str = '', unit: str = 'frames',
                 stream: Optional[TextIO] = None, tty_interval: float = 0.2, chunk: int = 100):
        self.total = total if total is not None and total > 0 else None
        self.label = f'{label}: ' if label else ''
        self.unit = unit
        self.stream = sys.stderr if stream is None else stream
        isatty = getattr(self.stream, 'isatty', None)
        self.is_tty = bool(isatty and isatty())
        self.tty_interval = tty_interval
        self.step = max(1, -(-self.total // 10)) if self.total else chunk
        self.done = 0
        self.start = time.perf_counter()
        self._last_draw = 0.0
        self._next_line = self.step

    @property
    def rate(self) -> float:
        """Items per second since construction."""
        elapsed = time.perf_counter() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def _text(self) -> str:
        count = f'{self.done}/{self.total}' if self.total else f'{self.done}'
        text = f'{self.label}{count} {self.unit}, {self.rate:.2f} {self.unit}/s'
        if self.total and self.rate > 0 and self.done < self.total:
            text += f', ETA {(self.total - self.done) / self.rate:.0f} s'
        return text

    def update(self, count: int = 1) -> None:
        """Record ``count`` more items done and print if it is time to."""
        self.done += count
        if self.is_tty:
            now = time.perf_counter()
            if now - self._last_draw >= self.tty_interval:
                self._last_draw = now
                self.stream.write('\r' + self._text() + '\x1b[K')
                self.stream.flush()
        elif self.done >= self._next_line:
            while self._next_line <= self.done:
                self._next_line += self.step
            if not self.total or self.done < self.total:  # the last line is close()'s
                print(self._text(), file=self.stream, flush=True)

    def close(self) -> None:
        """Print the final line: items done, seconds elapsed, overall rate."""
        elapsed = time.perf_counter() - self.start
        count = f'{self.done}/{self.total}' if self.total else f'{self.done}'
        text = (f'{self.label}{count} {self.unit} in {elapsed:.1f} s, {self.rate:.2f} '
                f'{self.unit}/s')
        prefix = '\r' if self.is_tty else ''
        suffix = '\x1b[K' if self.is_tty else ''
        print(prefix + text + suffix, file=self.stream, flush=True)


__all__ = ['RateProgress']
