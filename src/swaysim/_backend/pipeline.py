"""The op path when anything is configured (latency, faults, trace, jitter), as stages.

One op goes through, in order:

1. **count** the call and take its per-key call index: how many calls of this
   op, on this view, with this key came before (faults, latency and jitter
   draws are keyed by it, so they do not depend on scheduling order);
2. **faults**: select the call's firing (the first matching rule); a hang
   holds a device slot until cancelled;
3. **jitter** before the op (``schedule_jitter``);
4. the forward **cache**, single-flight: a hit costs one checkpoint; a miss
   whose identical call is already in flight waits for it;
5. a miss is a **forward pass**: service time on the device, then compute
   and store. An error fault raises here (on a hit, right after the
   checkpoint), after the jitter that follows the op, and stores nothing;
6. an output fault **corrupts** a copy of the value (the cache keeps it clean);
7. **jitter** after the op;
8. **trace**: the op is a span, ``op_start`` before stage 1 and ``op_end``
   (hit or error) after stage 7. On a backend that only traces, a view
   serves a cache hit itself, between the same two events
   (:attr:`OpPipeline.hit_tracer`): a miss comes here;
9. **observe** (only when a scenario harness attached a
   :class:`~swaysim._backend.ledger.CallLedger`): the op is also a record of
   the ledger, started before stage 1 and ended like the span.

A batch goes through the same stages. Fault rules are evaluated per item,
with the item's prompt and the per-key index of (batch op, view, prompt): a
hang on any item hangs the batch; an error fault on any item fails the whole
batch, after its service time, with ``item_index`` set to the first failing
item; an output fault corrupts only its item. Items share the per-prompt cache
and its single-flight: an item whose forward pass is already in flight (in
another batch or a ``next_token_dist``) waits for it. The batch then costs one
service time, the op's model plus ``batch_per_item`` per distinct prompt it
computes; nothing to compute, nothing to pay.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn, Protocol

import anyio

from swaysim._backend.cache import MISSING
from swaysim._backend.ledger import BATCH_SEPARATOR
from swaysim._chaos.corrupt import corrupt
from swaysim._chaos.faults import ERROR_KINDS, EXCEPTION_FOR_KIND, OUTPUT_KINDS
from swaysim._vocab import GENERATE_OP, NEXT_TOKEN_DIST_BATCH_OP, NEXT_TOKEN_DIST_OP, OP_SLOTS

if TYPE_CHECKING:
    from collections.abc import Awaitable, Hashable, Mapping

    from swaysim._backend.cache import ForwardCache, SingleFlight
    from swaysim._backend.gate import FifoSlots
    from swaysim._backend.ledger import CallLedger, ObservedCall
    from swaysim._backend.models import ViewModel
    from swaysim._backend.tracing import BackendTracer, LoopClock
    from swaysim._backend.views import DummyView
    from swaysim._chaos.faults import FaultFiring, FaultState
    from swaysim._chaos.jitter import ScheduleJitter
    from swaysim._chaos.latency import LatencyPlan
    from swaysim._types import TokenDist

__all__ = ["OpPipeline"]

_BATCH = NEXT_TOKEN_DIST_BATCH_OP
_BATCH_SLOT = OP_SLOTS[_BATCH]
_CallIdentity = tuple[str, str, str, int]
"""(op, view id, key, per-key call index): what an op's draws are keyed by."""


class OpRecord(Protocol):
    """What an op reports its end to: a trace span, or a ledger's record (which may wrap one)."""

    def end(self, hit: bool, detail: Mapping[str, object]) -> None: ...

    def corrupted(self, kind: str, item: int | None = None) -> None: ...


class RunOp(Protocol):
    """:attr:`OpPipeline.run`: one op on ``view`` (see :meth:`OpPipeline._serve`)."""

    def __call__(
        self,
        view: DummyView,
        op: str,
        key_text: str,
        cache_key: Hashable | None,
        args: tuple[Any, ...],
        units: int = 0,
    ) -> Awaitable[Any]: ...


class RunBatch(Protocol):
    """:attr:`OpPipeline.run_batch`: one ``next_token_dist_batch`` on ``view``."""

    def __call__(
        self, view: DummyView, prompts: tuple[str, ...], top_k: int
    ) -> Awaitable[list[TokenDist]]: ...


class OpPipeline:
    """One backend's slow op path, and the per-call bookkeeping view entries share with it.

    :attr:`run` and :attr:`run_batch` are the entry points, traced or not as
    chosen once, here: an untraced op pays no tracing frame at all.
    """

    __slots__ = (
        "_cache",
        "_clock",
        "_device",
        "_faults",
        "_flights",
        "_jitter",
        "_keyed",
        "_latency",
        "_ledger",
        "_tracer",
        "hit_tracer",
        "key_calls",
        "latency_draws",
        "latency_seconds",
        "run",
        "run_batch",
    )

    def __init__(
        self,
        *,
        cache: ForwardCache,
        flights: SingleFlight,
        device: FifoSlots,
        clock: LoopClock,
        latency: LatencyPlan | None,
        faults: FaultState | None,
        jitter: ScheduleJitter | None,
        tracer: BackendTracer | None,
    ) -> None:
        self._cache = cache
        self._flights = flights
        self._device = device
        self._clock = clock
        self._latency = latency
        self._faults = faults
        self._jitter = jitter
        self._tracer = tracer
        # With fixed latencies alone nothing reads a call's identity: skip the
        # per-key count (and its memory).
        fixed_only = latency is not None and latency._fixed_only
        self._keyed = not (faults is None and tracer is None and jitter is None and fixed_only)
        self.key_calls: dict[tuple[str, str, str], int] = {}
        self.latency_draws = 0
        self.latency_seconds = 0.0
        self._ledger: CallLedger | None = None
        self.run: RunOp = self._serve
        self.run_batch: RunBatch = self._serve_batch if tracer is None else self._traced_batch
        # Tracing alone changes nothing an op does: a view serves its cache hits
        # itself (a coroutine frame less) and traces them with this.
        alone = latency is None and faults is None and jitter is None
        self.hit_tracer: BackendTracer | None = tracer if alone else None

    def observe(self, ledger: CallLedger) -> None:
        """Report every op to ``ledger`` from now on (a scenario harness's observations)."""
        self._ledger = ledger
        self.hit_tracer = None
        self.run = self._observed
        self.run_batch = self._observed_batch

    def __repr__(self) -> str:
        parts = [
            f"latency={'on' if self._latency is not None else 'off'}",
            f"faults={'on' if self._faults is not None else 'off'}",
            f"jitter={'on' if self._jitter is not None else 'off'}",
            f"trace={'on' if self._tracer is not None else 'off'}",
            f"observed={'yes' if self._ledger is not None else 'no'}",
        ]
        return f"<OpPipeline {' '.join(parts)} in_flight={len(self._flights)}>"

    # -- bookkeeping shared with view entry and exit ----------------------------------

    def next_index(self, op: str, view_id: str, key_text: str) -> int:
        """The per-key index of this call: 1 for the first call of (op, view id, key)."""
        key = (op, view_id, key_text)
        index = self.key_calls[key] = self.key_calls.get(key, 0) + 1
        return index

    def count_latency(self, seconds: float, what: str, view_id: str) -> None:
        """Count (and trace) one latency event: a service time, a switch, an enter or exit."""
        self.latency_draws += 1
        self.latency_seconds += seconds
        if self._tracer is not None:
            self._tracer.latency(view_id, what, seconds)

    def select_fault(
        self,
        op: str,
        model: ViewModel,
        prompt: str,
        call_index: int,
        now: float,
        key_text: str | None = None,
    ) -> FaultFiring | None:
        """The call's firing, if any (recorded and traced); ``op`` may be ``"enter"``/``"exit"``."""
        faults = self._faults
        if faults is None:
            return None
        firing = faults.select(op, model.kind, model.id, prompt, call_index, now, key=key_text)
        if firing is not None and self._tracer is not None:
            self._tracer.fault(firing)
        return firing

    # -- stages -------------------------------------------------------------------------

    def _service_time(self, model: ViewModel, identity: _CallIdentity, units: int) -> float:
        """The forward pass's drawn service time, counted as one latency event (0: none)."""
        plan = self._latency
        if plan is None:
            return 0.0
        op, view_id, key_text, call_index = identity
        seconds = plan.service_time(op, model.kind, view_id, key_text, call_index, units)
        if seconds is None:
            return 0.0
        self.count_latency(seconds, op, view_id)
        return seconds

    async def _on_device(self, view: DummyView, seconds: float | None) -> None:
        """Service time: hold a device slot for ``seconds`` of loop time (None: until cancelled).

        No time takes no slot: it is one checkpoint. A free slot is taken
        without a scheduling round of its own (the sleep is the checkpoint).
        """
        if seconds is not None and seconds <= 0:
            await view._checkpoint()
            return
        device = self._device
        if not device.try_acquire():
            await device.acquire()
        try:
            if seconds is None:
                await anyio.sleep_forever()
            else:
                await view._sleep(seconds)
        finally:
            device.release()

    async def _fail(
        self,
        view: DummyView,
        firing: FaultFiring,
        identity: _CallIdentity,
        item_index: int | None = None,
    ) -> NoReturn:
        """An error fault: the jitter that follows the op, then the injected exception."""
        if self._jitter is not None:
            await self._jitter.pause(view._checkpoint, view._sleep, "after", *identity)
        raise EXCEPTION_FOR_KIND[firing.kind](firing, item_index=item_index)

    # -- one op -----------------------------------------------------------------------

    async def _observed(
        self,
        view: DummyView,
        op: str,
        key_text: str,
        cache_key: Hashable | None,
        args: tuple[Any, ...],
        units: int = 0,
    ) -> Any:
        """:meth:`_serve` as a ledger record (and a trace span when tracing)."""
        assert self._ledger is not None
        size = units if op == GENERATE_OP else args[1] if op == NEXT_TOKEN_DIST_OP else 0
        key = (view._model.id, op, key_text, size)
        record = self._start_record(view, key)
        try:
            return await self._serve(view, op, key_text, cache_key, args, units, record)
        except BaseException as exc:
            record.fail(exc)
            raise

    def _start_record(
        self, view: DummyView, key: tuple[str, str, str, int], items: tuple[str, ...] = ()
    ) -> ObservedCall:
        assert self._ledger is not None
        tracer = self._tracer
        span = None
        if tracer is not None:
            span = tracer.start_op(key[0], key[1], key[2], {"items": len(items)} if items else None)
        return self._ledger.start(view, key, self._clock.now(), span, items)

    async def _serve(
        self,
        view: DummyView,
        op: str,
        key_text: str,
        cache_key: Hashable | None,
        args: tuple[Any, ...],
        units: int = 0,
        span: OpRecord | None = None,
    ) -> Any:
        """One op through the stages of the module docstring.

        ``key_text`` names the call; ``cache_key`` None: never cached; ``args``
        start with the prompt (what ``FaultRule.prompt`` globs match); ``units``
        are a ``generate``'s tokens; ``span``: a ledger's record to end (which
        traces the op itself), else the op is traced here when the backend
        traces. Plain parameters, not a request object, and the stages (trace
        included) inline rather than awaited helpers, hence the length: an
        object or a coroutine frame would each cost a quarter of a
        microsecond per op.
        """
        model = view._model
        model.calls[OP_SLOTS[op]] += 1
        started, call_index = 0.0, 0
        if self._keyed:
            if self._faults is not None:  # a rule's time window reads it
                started = self._clock.now()
            key = (op, model.id, key_text)  # next_index, inline: a frame less
            call_index = self.key_calls[key] = self.key_calls.get(key, 0) + 1
        tracer = self._tracer
        traced = None
        if tracer is not None and span is None:
            traced = tracer.op_started(model.id, op, key_text, call_index)
        try:
            identity = (op, model.id, key_text, call_index)
            firing = None
            if self._faults is not None:
                firing = self.select_fault(op, model, args[0], call_index, started, key_text)
                if firing is not None and firing.kind == "hang":
                    await self._on_device(view, None)
            failing = firing if firing is not None and firing.kind in ERROR_KINDS else None
            jitter = self._jitter
            if jitter is not None:
                await jitter.pause(view._checkpoint, view._sleep, "before", *identity)
            value: Any = MISSING
            if cache_key is not None:
                if cache_key in self._flights:
                    await self._flights.wait_idle((cache_key,))
                value = self._cache.lookup(cache_key)
            hit = value is not MISSING
            if hit:
                await view._checkpoint()
                if failing is not None:
                    await self._fail(view, failing, identity)
            else:
                if cache_key is not None:
                    self._flights.claim(cache_key)
                try:
                    await self._on_device(view, self._service_time(model, identity, units))
                    if not view._live:
                        raise view._stale(op)
                    if failing is not None:
                        await self._fail(view, failing, identity)
                    value = model.forward(op, args)
                    if cache_key is not None:
                        self._cache.store(cache_key, value)
                finally:
                    if cache_key is not None:
                        self._flights.release(cache_key)
            if firing is not None and firing.kind in OUTPUT_KINDS:
                value = corrupt(firing.kind, value)
                if span is not None:
                    span.corrupted(firing.kind)
            if jitter is not None:
                await jitter.pause(view._checkpoint, view._sleep, "after", *identity)
        except BaseException as exc:
            if traced is not None:
                tracer.op_failed(traced, exc)  # type: ignore[union-attr]
            raise
        if traced is not None:
            tracer.op_ended(traced, hit)  # type: ignore[union-attr]
        elif span is not None:
            span.end(hit, {"call": call_index})
        return value

    # -- a batch ----------------------------------------------------------------------

    async def _traced_batch(
        self, view: DummyView, prompts: tuple[str, ...], top_k: int
    ) -> list[TokenDist]:
        """:meth:`_serve_batch` as a trace span."""
        assert self._tracer is not None
        key_text = BATCH_SEPARATOR.join(prompts)
        span = self._tracer.start_op(view._model.id, _BATCH, key_text, {"items": len(prompts)})
        try:
            return await self._serve_batch(view, prompts, top_k, span)
        except BaseException as exc:
            span.fail(exc)
            raise

    async def _observed_batch(
        self, view: DummyView, prompts: tuple[str, ...], top_k: int
    ) -> list[TokenDist]:
        """:meth:`_serve_batch` as a ledger record (and a trace span when tracing)."""
        key = (view._model.id, _BATCH, BATCH_SEPARATOR.join(prompts), top_k)
        record = self._start_record(view, key, prompts)
        try:
            return await self._serve_batch(view, prompts, top_k, record)
        except BaseException as exc:
            record.fail(exc)
            raise

    def _item_firings(self, model: ViewModel, prompts: tuple[str, ...]) -> list[FaultFiring | None]:
        """Each item's per-key index, (batch op, view id, its prompt), and its firing if any."""
        now = self._clock.now() if self._tracer is not None or self._faults is not None else 0.0
        firings = []
        for prompt in prompts:
            index = self.next_index(_BATCH, model.id, prompt)
            firings.append(self.select_fault(_BATCH, model, prompt, index, now))
        return firings

    async def _serve_batch(
        self, view: DummyView, prompts: tuple[str, ...], top_k: int, span: OpRecord | None = None
    ) -> list[TokenDist]:
        """``next_token_dist_batch`` through the stages of the module docstring."""
        model = view._model
        model.calls[_BATCH_SLOT] += 1
        firings = self._item_firings(model, prompts)
        batch_key = BATCH_SEPARATOR.join(prompts)
        batch_index = self.next_index(_BATCH, model.id, "\x1ebatch\x1e" + batch_key)
        identity = (_BATCH, model.id, batch_key, batch_index)
        if any(firing is not None and firing.kind == "hang" for firing in firings):
            await self._on_device(view, None)
        jitter = self._jitter
        if jitter is not None:
            await jitter.pause(view._checkpoint, view._sleep, "before", *identity)
        cache = self._cache
        keys = [(NEXT_TOKEN_DIST_OP, model.cache_id, prompt, top_k) for prompt in prompts]
        await self._flights.wait_idle(keys)
        values: list[Any] = [cache.lookup(key) for key in keys]
        missing: dict[Hashable, list[int]] = {}
        for item, value in enumerate(values):
            if value is MISSING:
                missing.setdefault(keys[item], []).append(item)
        for key in missing:
            self._flights.claim(key)
        try:
            units = len(missing)
            await self._on_device(
                view, self._service_time(model, identity, units) if units else 0.0
            )
            if not view._live:
                raise view._stale(_BATCH)
            for item, firing in enumerate(firings):
                if firing is not None and firing.kind in ERROR_KINDS:
                    await self._fail(view, firing, identity, item)
            for key, items in missing.items():
                value = model.next_token_dist(prompts[items[0]], top_k)
                cache.store(key, value)
                for item in items:
                    values[item] = value
        finally:
            for key in missing:
                self._flights.release(key)
        for item, firing in enumerate(firings):
            if firing is not None and firing.kind in OUTPUT_KINDS:
                values[item] = corrupt(firing.kind, values[item])
                if span is not None:
                    span.corrupted(firing.kind, item)
        if jitter is not None:
            await jitter.pause(view._checkpoint, view._sleep, "after", *identity)
        if span is not None:
            detail = {"items": len(prompts), "computed": len(missing), "call": batch_index}
            span.end(not missing, detail)
        return values
