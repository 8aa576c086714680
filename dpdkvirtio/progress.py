"""Progress of long work (benchmark runs, searches, hugepage reservation, guest image
preparation): a live bar with elapsed time and ETA on a terminal (tqdm), one plain line
per step anywhere else, so that a CI log gets a readable line per step and no control
characters. Pure Python; tqdm is optional (without it a terminal gets the plain lines).

    with Progress(12, "ndr") as p:
        for k in range(12):
            ...
            p.step(f"offered {rate:.2f} Mpps: loss {loss:.1e}")

``log(text)`` prints a line above the bar (or as a plain line) without advancing.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """``total`` steps of ``what`` (``total`` may be an upper bound: a search that ends
    early simply stops). ``stream`` defaults to stderr; ``bar`` forces the terminal bar
    (True) or the plain lines (False) instead of asking ``stream.isatty()``."""

    def __init__(self, total: int, what: str, *, stream: TextIO | None = None,
                 bar: bool | None = None):
        if total < 0:
            raise ValueError("total must be >= 0")
        self.total = total
        self.what = what
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.monotonic()
        self._bar: Any = None
        use_bar = self.stream.isatty() if bar is None else bar
        if use_bar:
            try:
                from tqdm import tqdm
            except ImportError:            # plain lines then
                return
            self._bar = tqdm(total=total, desc=what, file=self.stream, leave=True,
                             dynamic_ncols=True, unit="step",
                             mininterval=0, miniters=1,      # steps are seconds apart: draw each
                             bar_format="{desc}: {n_fmt}/{total_fmt} {bar} "
                                        "[{elapsed}<{remaining}] {postfix}")

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def eta_s(self) -> float | None:
        """Seconds left at the mean pace so far (None before the first step)."""
        if not self.done:
            return None
        return self.elapsed_s / self.done * max(0, self.total - self.done)

    def line(self, detail: str = "") -> str:
        """The plain line of the current step: what, step/total, elapsed, ETA, detail."""
        eta = self.eta_s()
        head = (f"{self.what}: {self.done}/{self.total} [{_clock(self.elapsed_s)} elapsed"
                + (f", ETA {_clock(eta)}" if eta is not None and self.done < self.total else "")
                + "]")
        return f"{head} {detail}".rstrip()

    def step(self, detail: str = "", n: int = 1) -> None:
        """Advance by ``n`` steps; ``detail`` says what the step found."""
        self.done += n
        if self._bar is not None:
            if detail:
                self._bar.write(detail, file=self.stream)
            self._bar.update(n)
        else:
            print(self.line(detail), file=self.stream, flush=True)

    def log(self, text: str) -> None:
        """A line of its own, without advancing."""
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
