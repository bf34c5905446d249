"""Scripted faults and latency: which requests misbehave, and how long requests wait before an answer."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

from tools.standins.stripe.model import PING_ONLY_FAULTS, Fault, Route


@dataclass
class _Script:
    faults: deque[Fault]
    forever: bool


class FaultScripts:
    """The fault scripts and latency of a stand-in (its base class). It holds the lock that guards all of the
    stand-in's state, and the wake event that stop() and reset() set to cut sleeping requests short."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Event()  # set to release sleeping requests; replaced by reset()
        self._scripts: dict[tuple[Route, str | None], _Script] = {}
        self._latency: dict[str | None, float] = {}

    # -- fault injection -------------------------------------------------------------------------

    def script(
        self,
        destination_id: str,
        faults: Sequence[Fault],
        *,
        route: Literal["ping", "retrieve"] = "ping",
        forever: bool = False,
    ) -> None:
        """Replace the fault script for ``route`` of a destination; ``forever`` cycles it instead of
        running out (one fault + forever = sticky). An empty sequence clears it."""
        self._set_script(route, destination_id, faults, forever)

    def script_list(self, faults: Sequence[Fault], *, forever: bool = False) -> None:
        """Fault script for ``GET /v2/core/event_destinations`` (every page request consumes one)."""
        self._set_script("list", None, faults, forever)

    def _set_script(self, route: Route, key: str | None, faults: Sequence[Fault], forever: bool) -> None:
        misplaced = [f.kind for f in faults if f.kind in PING_ONLY_FAULTS and route != "ping"]
        if misplaced:
            raise ValueError(f"faults {misplaced} only make sense on the ping route")
        with self._lock:
            if faults:
                self._scripts[(route, key)] = _Script(deque(faults), forever)
            else:
                self._scripts.pop((route, key), None)

    def _take_fault(self, route: Route, key: str | None) -> Fault | None:
        with self._lock:
            script = self._scripts.get((route, key))
            if script is None:
                return None
            fault = script.faults.popleft()
            if script.forever:
                script.faults.append(fault)
            elif not script.faults:
                del self._scripts[(route, key)]
            return fault

    @overload
    def set_latency(self, seconds: float, /) -> None: ...
    @overload
    def set_latency(self, destination_id: str, seconds: float, /) -> None: ...
    def set_latency(self, *args: Any) -> None:
        """Fixed delay before answering: every request, or requests naming one destination (added up)."""
        key, seconds = (None, args[0]) if len(args) == 1 else (args[0], args[1])
        with self._lock:
            self._latency[key] = float(seconds)

    def _sleep(self, seconds: float) -> bool:
        """Sleep; False when stop() or reset() cut the sleep short."""
        with self._lock:
            wake = self._wake
        return not wake.wait(None if math.isinf(seconds) else max(seconds, 0.0))

    def _latency_for(self, destination_id: str | None) -> float:
        with self._lock:
            return self._latency.get(None, 0.0) + (
                self._latency.get(destination_id, 0.0) if destination_id else 0.0
            )
