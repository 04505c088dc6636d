"""The drop-in: dlm-sway's ``DummyDifferentialBackend``, served by swaysim's async backend.

Code written against dlm-sway's dummy (its own tests included) uses this
class unchanged: the same constructor, the same ``with backend.as_...()``
blocks yielding views with plain op calls, the same numbers and types, the
same ``RuntimeError`` for a view entered while another is active, the same
``backend._inst`` instrumentation, the same private seams its tests lean on
(``_base_r``, ``_ft_r``, ``_enter(label)``, ``_exit()``, ``_active``). Both
classes are ordinary: no slots, so subclasses add methods and tests
monkeypatch ``as_base`` or ``view.logprob_of`` as they would dlm-sway's.

Underneath, every entry and op goes through an
:class:`~swaysim.AsyncDummyDifferentialBackend` over a blocking bridge of
the drop-in's own, so swaysim's latency, faults, jitter, exclusivity gate,
statistics and virtual clock apply. The differences from dlm-sway's dummy
are deliberate and documented in docs/dlm-sway.md: a view used after its
block raises :class:`~swaysim.StaleViewError`; an invalid ``lam`` or
``rank_scale`` is swaysim's :class:`~swaysim.InvalidArgumentError` (a
``ValueError``, as dlm-sway raises for ``rank_scale``).
"""

from __future__ import annotations

import functools
import re
import sys
import threading
import weakref
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, Final

import anyio
import numpy as np
from dlm_sway.backends.dummy import DummyResponses as SwayResponses
from dlm_sway.core.scoring import RollingLogprob, TokenDist

from swaysim._backend.backend import AsyncDummyDifferentialBackend
from swaysim._bridge.bridge import _check_op_timeout
from swaysim._dlm_sway.bridge import CLOSE_TIMEOUT, BorrowedBridge, Bridge, OwnedBridge
from swaysim._dlm_sway.convert import CannedOriginals, sway_answer, swaysim_responses
from swaysim._dlm_sway.instrumentation import SwaysimInstrumentation
from swaysim._time.clock import LOOPS
from swaysim._validation import require_bool
from swaysim.errors import (
    InvalidArgumentError,
    NestedViewAlreadyActiveError,
    NestedViewError,
    ViewAlreadyActiveError,
    ViewConflictError,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterator, Mapping
    from contextlib import AbstractContextManager
    from types import TracebackType

    from swaysim._backend.statistics import BackendStatistics
    from swaysim._bridge.blocking import BlockingBackend, BlockingView
    from swaysim._chaos.faults import FaultFiring
    from swaysim._protocols import ScoringModel

    _ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    _OpenView = Callable[[BlockingBackend], AbstractContextManager[BlockingView]]

__all__ = ["BridgedDummyView", "DummyDifferentialBackend"]

_PREFLIGHT_PROMPT: Final = "preflight"
_PREFLIGHT_TOP_K: Final = 8
_SCALED_LABEL: Final = re.compile(r"^scaled\((?P<lam>[^)]*)\)$")
_NULL_LABEL: Final = re.compile(r"^null\((?P<seed>\d+)(?:,rank=(?P<rank>[^)]*))?\)$")
_CLEAN: Final[tuple[None, None, None]] = (None, None, None)
_DROP_IN_OPTIONS: Final = ("loop", "virtual_time", "op_timeout")


def _cache_counts(backend: AsyncDummyDifferentialBackend) -> tuple[int, int]:
    """Hits and misses of the backend's forward cache so far (read in its loop).

    The counters ``statistics()`` reports, read without building a snapshot:
    this runs twice per op.
    """
    cache = backend._cache
    return cache.hits, cache.misses


async def _measured(
    backend: AsyncDummyDifferentialBackend,
    call: Callable[[ScoringModel], Awaitable[object]],
    view: ScoringModel,
) -> tuple[object, bool, float]:
    """``await call(view)`` in the loop: its answer, whether the cache served it, its loop time."""
    hits, misses = _cache_counts(backend)
    started = anyio.current_time()
    value = await call(view)
    seconds = anyio.current_time() - started
    hits_after, misses_after = _cache_counts(backend)
    return value, misses_after == misses and hits_after > hits, seconds


class BridgedDummyView:
    """A live view of the drop-in, as ``with backend.as_...() as view`` yields it.

    dlm-sway's ``ScoringModel``: ``generate``, ``logprob_of``,
    ``rolling_logprob``, ``next_token_dist`` and ``close``, returning
    dlm-sway's ``TokenDist`` and ``RollingLogprob``. An ordinary object:
    ``id`` is a plain attribute and every method can be replaced on the
    instance. Each scoring op is one op of swaysim's backend (latency,
    faults, cache) and one line of the backend's dlm-sway trace.
    """

    def __init__(
        self,
        backend_view: BlockingView,
        *,
        mode: str,
        responses: object,
        inst: SwaysimInstrumentation,
        originals: CannedOriginals,
        backend: AsyncDummyDifferentialBackend,
    ) -> None:
        self.id: str = backend_view.id
        self._mode = mode
        self._r = responses
        self._inst = inst
        self._view = backend_view
        self._originals = originals
        self._backend = backend

    def __repr__(self) -> str:
        state = "live" if self._view.live else "stale"
        return f"<BridgedDummyView id={self.id!r} {state}>"

    def generate(
        self,
        prompt: str,
        *,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> str:
        """The canned generation (a ``KeyError`` naming mode and prompt when there is none)."""
        return self._view.generate(
            prompt, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed
        )

    def close(self) -> None:
        """Nothing to release (dlm-sway's ``Model.close``)."""

    def logprob_of(self, prompt: str, completion: str) -> float:
        """Summed completion logprob (``-10.0`` when not canned)."""
        value = self._served(
            "logprob_of",
            f"{prompt}\x00{completion}",
            0,
            lambda view: view.logprob_of(prompt, completion),
        )
        return float(value)  # type: ignore[arg-type]

    def rolling_logprob(self, text: str) -> RollingLogprob:
        """Per-token logprobs over ``text`` (synthesized when not canned)."""
        value = self._served("rolling_logprob", text, 0, lambda view: view.rolling_logprob(text))
        return sway_answer(value, RollingLogprob, self._originals)

    def next_token_dist(self, prompt: str, *, top_k: int = 256) -> TokenDist:
        """The next-token distribution after ``prompt``."""
        value = self._served(
            "next_token_dist",
            prompt,
            top_k,
            lambda view: view.next_token_dist(prompt, top_k=top_k),
        )
        return sway_answer(value, TokenDist, self._originals)

    def _served(
        self,
        op: str,
        key_text: str,
        top_k: int,
        call: Callable[[ScoringModel], Awaitable[object]],
    ) -> object:
        measure = functools.partial(_measured, self._backend, call)
        value, hit, seconds = self._view.run_op(op, measure)
        self._inst.record(op, self.id, key_text, top_k, hit=hit, seconds=seconds)
        return value


class _Entered:
    """One view a thread entered through the drop-in: its label, context and view."""

    __slots__ = ("context", "label", "view")

    def __init__(
        self, label: str, context: AbstractContextManager[BlockingView], view: BlockingView
    ) -> None:
        self.label = label
        self.context = context
        self.view = view


def _opener_for(label: str) -> _OpenView:
    """How to enter the view dlm-sway's dummy labels ``label`` (unknown labels: base).

    dlm-sway's ``_enter`` takes any string; a subclass that passes its own
    still gets exclusivity, on the base view.
    """
    if label == "ft":
        return lambda sync: sync.as_finetuned()
    scaled = _SCALED_LABEL.match(label)
    if scaled is not None:
        try:
            lam = float(scaled["lam"])
        except ValueError:
            pass
        else:
            return lambda sync: sync.as_scaled_adapter(lam)
    null = _NULL_LABEL.match(label)
    if null is not None:
        seed = int(null["seed"])
        rank = float(null["rank"]) if null["rank"] else 1.0
        return lambda sync: sync.as_null_adapter(seed, rank_scale=rank)
    return lambda sync: sync.as_base()


class DummyDifferentialBackend:
    """A drop-in for dlm-sway's ``DummyDifferentialBackend``, served by swaysim.

    ``base`` and ``ft`` are dlm-sway's ``DummyResponses`` (or swaysim's), read
    live. ``loop`` picks the bridge's event loop (``"asyncio"`` or
    ``"trio"``), on a virtual clock unless ``virtual_time=False``;
    ``op_timeout`` (loop seconds) bounds every op, so a hung op raises
    ``TimeoutError`` instead of blocking forever. Every other keyword goes
    to :class:`~swaysim.AsyncDummyDifferentialBackend` (``latency``,
    ``faults``, ``schedule_jitter``, ``trace``, ...), with
    ``exclusivity="strict"`` by default: dlm-sway's dummy raises at once,
    it never waits. ``safe_for_concurrent_views`` follows the class
    attribute unless given. Defaults for all of these can be set on a
    subclass in :attr:`swaysim_options` (what the pytest switch does).

    The bridge opens at the first view entry and closes with :meth:`close`,
    the ``with`` block, garbage collection or interpreter exit; a later
    entry opens a fresh one (a new loop, a new virtual clock).
    """

    safe_for_concurrent_views: bool = False
    swaysim_options: ClassVar[Mapping[str, Any]] = {}
    """Defaults for the constructor's keyword options (a subclass's configuration)."""

    def __init__(
        self,
        base: object = None,
        ft: object = None,
        **swaysim_backend_options: Any,
    ) -> None:
        options = {**self.swaysim_options, **swaysim_backend_options}
        drop_in = {name: options.pop(name) for name in _DROP_IN_OPTIONS if name in options}
        self._base_r = base if base is not None else SwayResponses()
        self._ft_r = ft if ft is not None else SwayResponses()
        self._originals = CannedOriginals()
        if "safe_for_concurrent_views" in options:
            require_bool("safe_for_concurrent_views", options["safe_for_concurrent_views"])
            self.safe_for_concurrent_views = options["safe_for_concurrent_views"]
        options["safe_for_concurrent_views"] = self.safe_for_concurrent_views
        options.setdefault("exclusivity", "strict")
        backend = AsyncDummyDifferentialBackend(
            swaysim_responses(self._base_r, self._originals),
            swaysim_responses(self._ft_r, self._originals),
            **options,
        )
        loop = drop_in.get("loop", "asyncio")
        if loop not in LOOPS:
            message = f"loop={loop!r} is not supported; expected asyncio or trio"
            raise InvalidArgumentError(message, field="loop", value=loop)
        virtual_time = require_bool("virtual_time", drop_in.get("virtual_time", True))
        op_timeout = _check_op_timeout(drop_in.get("op_timeout"))
        self._bridge: Bridge = OwnedBridge(
            backend, loop=loop, virtual_time=virtual_time, op_timeout=op_timeout
        )
        self._setup(self._bridge)
        # The finalizer holds the bridge, never the backend, so garbage collection can run it.
        self._finalizer = weakref.finalize(self, self._bridge.close)

    @classmethod
    def over(cls, sync_backend: BlockingBackend) -> DummyDifferentialBackend:
        """A drop-in over a bridge someone else opened (a runner's ``sync_backend``).

        Its views, errors and ``_inst`` are the drop-in's; the bridge, its
        backend and its options stay the caller's, and ``close()`` leaves them.
        """
        backend = sync_backend.backend
        if not isinstance(backend, AsyncDummyDifferentialBackend):
            raise InvalidArgumentError(
                f"sync_backend={sync_backend!r} must bridge swaysim's "
                "AsyncDummyDifferentialBackend",
                field="sync_backend",
                value=sync_backend,
            )
        self = cls.__new__(cls)
        self._base_r = SwayResponses()
        self._ft_r = SwayResponses()
        self._originals = CannedOriginals()
        self.safe_for_concurrent_views = backend.safe_for_concurrent_views
        self._bridge = BorrowedBridge(sync_backend, backend)
        self._setup(self._bridge)
        self._finalizer = weakref.finalize(self, self._bridge.close)
        return self

    def _setup(self, bridge: Bridge) -> None:
        backend = bridge.backend
        self._inst = SwaysimInstrumentation(
            functools.partial(bridge.in_loop_or_closed, backend.statistics)
        )
        self._entered = threading.local()
        self._active: str | None = None

    # -- swaysim's side -----------------------------------------------------------------

    @property
    def swaysim_backend(self) -> AsyncDummyDifferentialBackend:
        """The async backend serving every entry and op (statistics, fault log, trace)."""
        return self._bridge.backend

    @property
    def loop(self) -> str | None:
        """The bridge's event loop (None when the bridge is someone else's)."""
        return self._bridge.loop if isinstance(self._bridge, OwnedBridge) else None

    @property
    def bridge_open(self) -> bool:
        """Whether the bridge is open (it opens at the first view entry)."""
        return self._bridge.is_open

    def statistics(self) -> BackendStatistics:
        """swaysim's statistics of the backend (entries, switches, cache, faults fired...)."""
        return self._bridge.in_loop_or_closed(self._bridge.backend.statistics)

    @property
    def fault_log(self) -> tuple[FaultFiring, ...]:
        """Every injected fault that fired, in order."""
        return self._bridge.in_loop_or_closed(lambda: self._bridge.backend.fault_log)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Close the bridge (a thread blocked on it sees ``BridgeError``); True when it is.

        Waits at most ``timeout`` wall seconds for the loop's thread. The
        backend stays usable: the next view entry opens a fresh bridge.
        """
        return self._bridge.close(timeout)

    def __enter__(self) -> DummyDifferentialBackend:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "open" if self._bridge.is_open else "closed"
        return (
            f"<{type(self).__name__} (swaysim drop-in) bridge={state} "
            f"active={self._active!r} {self._bridge.backend!r}>"
        )

    # -- dlm-sway's contract --------------------------------------------------------------

    def as_base(self) -> AbstractContextManager[BridgedDummyView]:
        """``with backend.as_base() as view``: the base model."""
        return self._view_block("base", lambda sync: sync.as_base())

    def as_finetuned(self) -> AbstractContextManager[BridgedDummyView]:
        """``with backend.as_finetuned() as view``: the fine-tuned model."""
        return self._view_block("ft", lambda sync: sync.as_finetuned())

    def as_scaled_adapter(self, lam: float) -> AbstractContextManager[BridgedDummyView]:
        """The adapter's term times ``lam``: a linear blend of base and ft."""
        return self._view_block(f"scaled({lam})", lambda sync: sync.as_scaled_adapter(lam))

    def as_null_adapter(
        self, seed: int, *, init_scale: float = 0.02, rank_scale: float = 1.0
    ) -> AbstractContextManager[BridgedDummyView]:
        """A null adapter of seeded noise (std ``init_scale * sqrt(rank_scale)``)."""
        label = f"null({seed})" if rank_scale == 1.0 else f"null({seed},rank={rank_scale:.2f})"
        return self._view_block(
            label,
            lambda sync: sync.as_null_adapter(seed, init_scale=init_scale, rank_scale=rank_scale),
        )

    def preflight_finite_check(self) -> tuple[bool, str]:
        """dlm-sway's preflight: one ``next_token_dist`` on base, then on ft.

        Through ``as_base`` and ``as_finetuned``, so a subclass's own views are
        what is checked, as with dlm-sway's dummy; the reasons are worded as
        dlm-sway words them.
        """
        try:
            with self.as_base() as base_view:
                base = base_view.next_token_dist(_PREFLIGHT_PROMPT, top_k=_PREFLIGHT_TOP_K)
            with self.as_finetuned() as ft_view:
                ft = ft_view.next_token_dist(_PREFLIGHT_PROMPT, top_k=_PREFLIGHT_TOP_K)
        except Exception as exc:
            return False, f"preflight raised {type(exc).__name__}: {exc}"
        for label, dist in (("base", base), ("ft", ft)):
            logprobs = np.asarray(dist.logprobs)
            bad = int((~np.isfinite(logprobs)).sum())
            if bad:
                return (
                    False,
                    f"{label} view produced {bad}/{logprobs.size} non-finite logprob(s) "
                    f"on prompt {_PREFLIGHT_PROMPT!r}",
                )
        return True, ""

    # -- entering and exiting (dlm-sway's _enter/_exit seams included) ------------------

    @contextmanager
    def _view_block(self, label: str, open_view: _OpenView) -> Iterator[BridgedDummyView]:
        entered = self._enter_view(label, open_view)
        try:
            yield self._view_for(label, entered.view)
        except BaseException:
            self._exit_view(sys.exc_info())
            raise
        self._exit_view(_CLEAN)

    def _enter(self, mode: str) -> None:
        """dlm-sway's seam: hold the view ``mode`` labels until :meth:`_exit`.

        Subclasses written for dlm-sway's dummy call ``self._enter("ft")``
        before yielding a view of their own; swaysim's gate then holds the ft
        view (``"scaled(0.5)"``, ``"null(3)"`` and ``"null(3,rank=2.00)"``
        are understood too; any other label holds base).
        """
        self._enter_view(mode, _opener_for(mode))

    def _exit(self) -> None:
        """dlm-sway's seam: release the view the last :meth:`_enter` of this thread holds.

        Called in a ``finally`` block, it sees the exception in flight (so an
        injected exit fault fires only after a clean block, as swaysim's do).
        """
        self._exit_view(sys.exc_info())

    def _stack(self) -> list[_Entered]:
        stack: list[_Entered] | None = getattr(self._entered, "stack", None)
        if stack is None:
            stack = self._entered.stack = []
        return stack

    def _enter_view(self, label: str, open_view: _OpenView) -> _Entered:
        context = open_view(self._bridge.sync())
        try:
            view = context.__enter__()
        except NestedViewError as exc:
            raise NestedViewAlreadyActiveError(self._already_active(label, exc)) from exc
        except ViewConflictError as exc:
            raise ViewAlreadyActiveError(self._already_active(label, exc)) from exc
        entered = _Entered(label, context, view)
        self._stack().append(entered)
        self._active = label
        return entered

    def _already_active(self, label: str, exc: ViewConflictError) -> str:
        held = self._stack()
        active = held[-1].label if held else self._active
        return (
            f"DifferentialBackend view already active ({active!r}); exit the current view "
            f"before entering {label!r}. (swaysim: {exc})"
        )

    def _exit_view(self, exc_info: _ExcInfo) -> None:
        stack = self._stack()
        if not stack:
            return
        entered = stack.pop()
        if not stack:
            self._active = None
        entered.context.__exit__(*exc_info)

    def _view_for(self, label: str, view: BlockingView) -> BridgedDummyView:
        mode, responses = "base", self._base_r
        scaled = _SCALED_LABEL.match(label)
        if label == "ft" or (scaled is not None and _at_least_half(scaled["lam"])):
            mode, responses = "ft", self._ft_r
        return BridgedDummyView(
            view,
            mode=mode,
            responses=responses,
            inst=self._inst,
            originals=self._originals,
            backend=self._bridge.backend,
        )


def _at_least_half(text: str) -> bool:
    try:
        return float(text) >= 0.5
    except ValueError:
        return False
