"""Function probes of one's own: the probes behind function_probes.toml.

A scenario names one with ``kind = "function"`` and ``function = "function_probes:<name>"``;
the loader finds this module in the scenario's folder and imports it only to run (the same
trust model as ``runner = ...``). Each is awaited as ``function(backend, ctx, **options)``
with the table's ``options`` and returns a ``ProbeResult`` (the runner stamps its name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swaysim import ProbeResult, Verdict

if TYPE_CHECKING:
    from swaysim import DifferentialBackend, ProbeContext


async def logprob_gain(
    backend: DifferentialBackend, ctx: ProbeContext, *, prompt: str, completion: str, after: str
) -> ProbeResult:
    """How much more ft likes ``completion`` than base, after the probe ``after``.

    It reads the result of ``after`` (which its ``requires`` names): a runner must have
    finished that one first. (A plain ``def`` probe would run on a worker thread, whose
    real compute time a virtual clock follows, so a library scenario keeps to ``async def``:
    its makespan must be the same in every process.)
    """
    upstream = ctx.results.get(after)
    if upstream is None:
        message = f"ran before {after!r}, which its requires names"
        return ProbeResult("", "function", Verdict.ERROR, message=message)
    async with backend.as_base() as base:
        base_value = await base.logprob_of(prompt, completion)
    async with backend.as_finetuned() as ft:
        ft_value = await ft.logprob_of(prompt, completion)
    gain = ft_value - base_value
    verdict = Verdict.PASS if gain > 0.0 and upstream.verdict is Verdict.PASS else Verdict.FAIL
    return ProbeResult("", "function", verdict, raw=gain, base_value=base_value, ft_value=ft_value)


async def ft_top_token(
    backend: DifferentialBackend, ctx: ProbeContext, *, prompt: str
) -> ProbeResult:
    """An async probe that drives the ft view itself: PASS when ft has a most likely token.

    It sends its op through ``ctx.call`` when the runner offers one (the runner's op timeout
    and retries), else directly; only the runner's ``probe_timeout`` bounds the probe whole.
    """
    async with backend.as_finetuned() as ft:
        if ctx.call is not None:
            dist = await ctx.call(ft.next_token_dist, prompt, top_k=8)
        else:
            dist = await ft.next_token_dist(prompt, top_k=8)
    top = int(dist.token_ids[0])
    return ProbeResult("", "function", Verdict.PASS, raw=float(top))
