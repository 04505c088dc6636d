"""A trial's scenario, drawn from its seed: fault plan, latency plan, jitter, seeds.

:func:`trial_document` is a pure function of ``(config, seed)``: the draws come
from a numpy ``Generator`` seeded with a BLAKE2 digest of the seed (never
``hash()``), so trial 1234 is the same scenario in any process, on any machine,
whichever worker ran it. The result is a scenario *document* (the TOML file as
Python values) built on the base scenario: its backend, probes and runner
options, with the base's own fault rules replaced by the generated ones and its
``[expect]`` left for :mod:`~swaysim._explore.trial` to set. Every range comes
from :mod:`~swaysim._explore.bounds`.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import tomllib
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from swaysim._chaos.faults import VIEW_EVENT_KINDS
from swaysim._explore.bounds import (
    BACKOFF_CAP_FACTORS,
    BACKOFF_SECONDS,
    CONCURRENCY_CHOICES,
    JITTER_SEED_BOUND,
    LATENCY_SECONDS,
    MAX_EVERY,
    MAX_FIRES,
    MAX_NTH,
    MAX_RETRIES,
    MAX_RULES,
    POLICY_CHANCE,
    PROBABILITY_CHOICES,
    SCENARIO_SEED_BOUND,
    SIGMA_RANGE,
    STRICT_CHANCE,
    SWITCH_SECONDS,
    TIMEOUT_KINDS,
    VIEW_KIND_CHOICES,
    applicable_ops,
)
from swaysim._explore.config import facts

if TYPE_CHECKING:
    from swaysim._explore.config import ExploreConfig, ScenarioFacts

__all__ = ["Document", "generator", "trial_document"]

Document = dict[str, Any]
"""A scenario file as Python values (what ``tomllib`` reads and ``tomli_w`` writes)."""
_DOMAIN: Final = b"swaysim-explore-trial"


def generator(seed: int, *purpose: str) -> np.random.Generator:
    """A numpy Generator that is a pure function of ``seed`` (and ``purpose``)."""
    digest = hashlib.blake2b(
        repr((seed, *purpose)).encode(), digest_size=16, person=_DOMAIN[:16]
    ).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def _seconds(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return round(float(rng.uniform(*bounds)), 4)


def _pick(rng: np.random.Generator, options: tuple[Any, ...]) -> Any:
    return options[int(rng.integers(len(options)))]


def _trigger(rng: np.random.Generator, rule: dict[str, Any]) -> None:
    """When the rule fires among the calls it targets: always, nth, every, after or by chance."""
    form = int(rng.integers(5))
    if form == 1:
        rule["nth"] = int(rng.integers(1, MAX_NTH + 1))
    elif form == 2:
        rule["every"] = int(rng.integers(2, MAX_EVERY + 1))
    elif form == 3:
        rule["after"] = int(rng.integers(0, MAX_NTH + 1))
    elif form == 4:
        rule["probability"] = float(_pick(rng, PROBABILITY_CHOICES))
    if rng.random() < 0.3:
        rule["max_fires"] = int(rng.integers(1, MAX_FIRES + 1))


def _targets(
    rng: np.random.Generator, rule: dict[str, Any], found: ScenarioFacts, views: tuple[str, ...]
) -> None:
    """Which views, ops and prompts the rule aims at (narrowed views always named)."""
    kind = rule["kind"]
    aimed = tuple(view for view in found.views if view in views)
    narrowed = views != VIEW_KIND_CHOICES
    if narrowed or rng.random() < 0.6:
        count = 1 if len(aimed) < 2 or rng.random() < 0.7 else 2
        picked = rng.choice(len(aimed), size=count, replace=False)
        rule["views"] = sorted(aimed[int(i)] for i in picked)
    ops = applicable_ops(kind, found.ops)
    if ops and rng.random() < 0.4:
        rule["ops"] = [_pick(rng, ops)]
    if kind not in VIEW_EVENT_KINDS and found.prompts and rng.random() < 0.5:
        prompt = str(_pick(rng, found.prompts))
        word = prompt.split(" ")[0]
        rule["prompt"] = prompt if rng.random() < 0.6 or not word else f"{word}*"


def fault_rules(
    rng: np.random.Generator, config: ExploreConfig, found: ScenarioFacts
) -> list[dict[str, Any]]:
    """1 to :data:`MAX_RULES` rules over the kinds and views ``config`` allows."""
    kinds = tuple(k for k in config.faults if found.timeouts or k not in TIMEOUT_KINDS)
    if not kinds or not any(view in config.views for view in found.views):
        return []
    rules = []
    for index in range(int(rng.integers(1, MAX_RULES + 1))):
        kind = str(_pick(rng, kinds))
        rule: dict[str, Any] = {"name": f"{kind}-{index + 1}", "kind": kind}
        _targets(rng, rule, found, config.views)
        _trigger(rng, rule)
        rules.append(rule)
    return rules


def latency_table(rng: np.random.Generator) -> dict[str, Any] | None:
    """A generated ``[backend.latency]`` table, or None to keep the scenario's own."""
    form = int(rng.integers(4))
    if form == 0:
        return None
    if form == 1:
        default = {"model": "constant", "seconds": _seconds(rng, LATENCY_SECONDS)}
    elif form == 2:
        low, high = sorted((_seconds(rng, LATENCY_SECONDS), _seconds(rng, LATENCY_SECONDS)))
        default = {"model": "uniform", "low": low, "high": high}
    else:
        median = max(_seconds(rng, LATENCY_SECONDS), LATENCY_SECONDS[0])
        default = {"model": "lognormal", "median": median, "sigma": _seconds(rng, SIGMA_RANGE)}
    table: dict[str, Any] = {"default": default}
    if rng.random() < 0.3:
        table["view_switch"] = {"model": "constant", "seconds": _seconds(rng, SWITCH_SECONDS)}
    return table


def retry_policy(rng: np.random.Generator) -> dict[str, Any] | None:
    """A drawn ``retries``, ``backoff`` and ``backoff_max``, or None to keep the file's."""
    if rng.random() >= POLICY_CHANCE:
        return None
    backoff = max(_seconds(rng, BACKOFF_SECONDS), BACKOFF_SECONDS[0])
    factor = float(_pick(rng, BACKOFF_CAP_FACTORS))
    return {
        "retries": int(rng.integers(1, MAX_RETRIES + 1)),
        "backoff": backoff,
        "backoff_max": round(backoff * factor, 4),
    }


@functools.lru_cache(maxsize=64)
def _base_document(text: str) -> Document:
    """A base scenario's text read once per process (every trial copies it before editing)."""
    return tomllib.loads(text)


def trial_document(config: ExploreConfig, seed: int) -> tuple[int, Document]:
    """Which base scenario trial ``seed`` starts from, and its generated document."""
    rng = generator(seed)
    index = int(rng.integers(len(config.scenarios)))
    base = config.scenarios[index]
    document: Document = copy.deepcopy(_base_document(base.text))
    found = facts(base.text)
    backend = document.setdefault("backend", {})
    rules = fault_rules(rng, config, found)
    backend.pop("faults", None)
    if rules:
        backend["faults"] = {"rules": rules}
    latency = latency_table(rng)
    if latency is not None:
        backend["latency"] = latency
    backend.pop("schedule_jitter", None)
    if rng.random() < 0.5:
        backend["schedule_jitter"] = int(rng.integers(JITTER_SEED_BOUND))
    if rng.random() < 0.5:
        document["seed"] = int(rng.integers(SCENARIO_SEED_BOUND))
    if not backend.get("safe_for_concurrent_views") and rng.random() < STRICT_CHANCE:
        backend["exclusivity"] = "strict"
    if rng.random() < 0.5:
        document.setdefault("runner", {})["concurrency"] = int(_pick(rng, CONCURRENCY_CHOICES))
    policy = retry_policy(rng)
    if policy is not None:
        document.setdefault("runner", {}).update(policy)
    if not backend:
        del document["backend"]
    return index, document
