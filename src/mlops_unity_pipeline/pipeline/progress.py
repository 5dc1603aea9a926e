"""Console progress for long stages: a live bar on a terminal, plain lines in logs and CI."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from ..trainer.base import Progress


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else (f"{m}m{s:02d}s" if m else f"{s}s")


class ConsoleProgress:
    def __init__(self, label: str, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = self.stream.isatty()
        self._last_plain = 0.0

    def message(self, text: str) -> None:
        if self.enabled:
            if self.tty:
                self.stream.write("\r\x1b[2K")
            self.stream.write(text + "\n")
            self.stream.flush()

    def update(self, p: Progress) -> None:
        if not self.enabled:
            return
        frac = p.fraction
        step = min(p.step, p.max_steps) if p.max_steps else p.step  # the last batch may end past the budget
        reward = f"{p.mean_reward:.3f}" if p.mean_reward is not None else "n/a"
        text = (f"{self.label} {step:>9,}/{p.max_steps:,} steps {frac:6.1%}  mean reward {reward}  "
                f"elapsed {_duration(p.elapsed_s)}  ETA {_duration(p.eta_s)}")
        if self.tty:
            width = 24
            bar = "#" * int(frac * width) + "." * (width - int(frac * width))
            self.stream.write(f"\r\x1b[2K[{bar}] {text}")
            self.stream.flush()
        else:
            now = time.monotonic()
            if now - self._last_plain >= 1.0 or frac >= 1.0:
                self._last_plain = now
                self.stream.write(text + "\n")
                self.stream.flush()

    def count(self, done: int, total: int, what: str = "episodes") -> None:
        """Progress of countable work (evaluation episodes)."""
        if not self.enabled:
            return
        text = f"{self.label} {done:>6,}/{total:,} {what} {done / max(total, 1):6.1%}"
        if self.tty:
            self.stream.write(f"\r\x1b[2K{text}")
            self.stream.flush()
        else:
            now = time.monotonic()
            if now - self._last_plain >= 5.0 or done >= total:
                self._last_plain = now
                self.stream.write(text + "\n")
                self.stream.flush()

    def done(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()
