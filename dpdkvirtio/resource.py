"""What every object holding DPDK resources shares (mempools, ports, PMDs, captures, the
switch): the EAL tracks it weakly and closes what is still open at exit, in
``_close_rank`` order; ``close()`` releases once and is idempotent; it is a context
manager; and one collected while open warns (ResourceWarning) and is closed then.

A subclass says whether it is closed (``_is_closed``) and how it releases
(``_close_resources``), and names the errors a close at collection may meet and ignore
(``_collect_errors``: a pool whose mbufs are still out, say).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

from . import eal as _eal_mod
from .errors import DpdkError


class Resource:
    # at EAL exit: the switch and captures first, then PMD threads (they touch ports),
    # then ports, then mempools
    _close_rank: ClassVar[int] = 3
    _collect_errors: ClassVar[tuple[type[BaseException], ...]] = (DpdkError,)

    def _track(self, eal: Any) -> None:
        """Register with ``eal`` (an Eal): closed at its exit if still open."""
        eal.track(self)

    def _is_closed(self) -> bool:
        raise NotImplementedError

    def _close_resources(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what this object holds (idempotent). Errors are the subclass's: the
        object then stays open and tracked."""
        if self._is_closed():
            return
        self._close_resources()
        _eal_mod.untrack(self)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            closed = self._is_closed()
        except AttributeError:              # __init__ failed before the state existed
            return
        if closed or not _eal_mod.alive():
            return
        warnings.warn(f"unclosed {self!r}: close() it or use a with block",
                      ResourceWarning, source=self, stacklevel=2)
        try:
            self.close()
        except self._collect_errors:
            pass
