"""A dependency-free progress bar: step, loss, tokens/s and time left."""

import sys
import time


class Progress:
    """Redraws one line on a terminal; elsewhere (CI, a log file) prints a line
    every ``1/lines`` of the way, so logs stay short."""

    def __init__(self, total, desc="train", stream=None, lines=10, start=0):
        self.total, self.desc, self.start_step = total, desc, start
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every = max(1, (total - start) // lines)
        self.t0 = time.perf_counter()
        self.tokens = 0

    def update(self, step, tokens=0, **values):
        """Report that ``step`` (0-based) is done, having processed ``tokens`` tokens."""
        self.tokens += tokens
        done = step + 1 - self.start_step
        if not self.tty and done % self.every and step + 1 != self.total:
            return
        elapsed = time.perf_counter() - self.t0
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        eta = elapsed / done * (self.total - step - 1) if done else 0.0
        width = 24
        filled = int(width * (step + 1) / self.total)
        stats = "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in values.items())
        line = (
            f"{self.desc} [{'#' * filled}{'.' * (width - filled)}] {step + 1}/{self.total}  {stats}"
            f"  {rate:,.0f} tok/s  ETA {_clock(eta)}"
        )
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self):
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds):
    m, s = divmod(int(seconds + 0.5), 60)
    return f"{m}:{s:02d}"
