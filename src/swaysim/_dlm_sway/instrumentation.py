"""``backend._inst``: what dlm-sway's runner reads from a backend, backed by swaysim.

dlm-sway's runner duck-types its backend's instrumentation: it labels trace
events with ``_inst.set_current_probe(name)``, installs a trace writer for
``--trace`` (``_inst.trace = TraceWriter(path)``) and snapshots
``_inst.stats.to_dict()`` into ``SuiteResult.backend_stats``, which the
report's cache line reads. :class:`SwaysimInstrumentation` offers all of it:

- ``stats`` is a fresh dlm-sway ``BackendStats`` on every read: the cache
  hits, misses and forward passes are swaysim's own (``statistics()`` of the
  drop-in's backend), plus any the caller's own views made through
  :meth:`~SwaysimInstrumentation.cached`; ``scoring_wall_s`` is the loop time
  ops took (virtual under a virtual clock, so injected latency shows);
- every op a drop-in view serves writes one trace line, in dlm-sway's
  format, with the current probe label and whether swaysim's cache hit;
- ``set_current_probe`` also attributes the thread's calls to that probe
  (:func:`swaysim.attribute`), so a scenario's ``no_false_pass`` can follow
  dlm-sway's probes;
- ``cached(op, view_id, prompt, top_k, compute)`` works as dlm-sway's does,
  for views of the caller's own classes (subclasses of dlm-sway's
  ``_DummyView`` handed ``inst=backend._inst``).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, TypeVar

from dlm_sway.backends._instrumentation import (
    _MISS,
    BackendStats,
    ForwardCache,
    TraceWriter,
    _prompt_hash,
    _TraceEvent,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from swaysim._backend.statistics import BackendStatistics

__all__ = ["SwaysimInstrumentation"]

_T = TypeVar("_T")


class SwaysimInstrumentation:
    """dlm-sway's ``BackendInstrumentation`` contract over a swaysim backend's statistics.

    ``statistics`` returns the swaysim backend's counters read consistently
    (in its loop when the bridge is open). Thread-safe.
    """

    def __init__(self, statistics: Callable[[], BackendStatistics], *, cache_maxsize: int = 256):
        self._statistics = statistics
        self.cache = ForwardCache(maxsize=cache_maxsize)
        """dlm-sway's cache, used only by :meth:`cached` (views of the caller's own classes)."""
        self.trace = TraceWriter(None)
        """dlm-sway's trace writer; its runner replaces it for ``--trace``."""
        self._current_probe: str | None = None
        self._lock = threading.Lock()
        self._own = BackendStats()
        self._scoring_seconds = 0.0

    def __repr__(self) -> str:
        return f"<SwaysimInstrumentation probe={self._current_probe!r} trace={self.trace!r}>"

    @property
    def current_probe(self) -> str | None:
        """The label the runner set for the probe now running (None: none)."""
        return self._current_probe

    @property
    def stats(self) -> BackendStats:
        """A snapshot: swaysim's cache counters plus those of :meth:`cached`."""
        counted = self._statistics()
        with self._lock:
            own = self._own
            return BackendStats(
                cache_hits=counted.cache_hits + own.cache_hits,
                cache_misses=counted.cache_misses + own.cache_misses,
                forward_passes=counted.forward_passes + own.forward_passes,
                scoring_wall_s=self._scoring_seconds + own.scoring_wall_s,
            )

    def set_current_probe(self, name: str | None) -> None:
        """Label later trace events with ``name`` (dlm-sway's runner calls it between probes)."""
        self._current_probe = name

    def close(self) -> None:
        """Close the trace writer, as dlm-sway's instrumentation does."""
        self.trace.close()

    def record(
        self, op: str, view_id: str, key_text: str, top_k: int, *, hit: bool, seconds: float
    ) -> None:
        """One op a drop-in view served: its time, and a trace line when tracing is on."""
        with self._lock:
            self._scoring_seconds += seconds
        self._write(op, view_id, key_text, top_k, hit=hit, seconds=seconds)

    def _write(
        self, op: str, view_id: str, key_text: str, top_k: int, *, hit: bool, seconds: float
    ) -> None:
        self.trace.write(
            _TraceEvent(
                ts=time.time(),
                probe=self._current_probe,
                view_id=view_id,
                prompt_hash=_prompt_hash(key_text),
                top_k=top_k,
                op=op,
                wall_ms=seconds * 1000.0,
                hit=hit,
            )
        )

    def cached(
        self, op: str, view_id: str, prompt: str, top_k: int, compute: Callable[[], _T]
    ) -> _T:
        """dlm-sway's ``BackendInstrumentation.cached``: the cache, the counters, a trace line."""
        key = (op, view_id, _prompt_hash(prompt), top_k)
        started = time.perf_counter()
        value = self.cache.get(key)
        hit = value is not _MISS
        if not hit:
            value = compute()
            self.cache.put(key, value)
        seconds = time.perf_counter() - started
        with self._lock:
            if hit:
                self._own.cache_hits += 1
            else:
                self._own.cache_misses += 1
                self._own.forward_passes += 1
            self._own.scoring_wall_s += seconds
        self._write(op, view_id, prompt, top_k, hit=hit, seconds=seconds)
        return value  # type: ignore[no-any-return]
