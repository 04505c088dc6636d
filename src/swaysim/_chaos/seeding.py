"""Order-independent random draws derived from hashlib.

A draw for one call depends only on the parts that name the call (plan seed,
rule, op, view, prompt, per-key call index), never on how many draws came
before it. That is what keeps firings and latencies identical across event
loops, concurrency levels and processes: a shared ``numpy`` generator would
hand out values in task-scheduling order instead.
"""

from __future__ import annotations

import hashlib
import struct

_UNPACK3 = struct.Struct("<QQQ").unpack
_TO_UNIT = 2.0**-64
# The largest 64-bit word whose scaled value is below 1.0 once rounded to a
# double (1 - 2**-53); words above it would round up to exactly 1.0.
_BELOW_ONE = 2**64 - 2**11
_blake2b = hashlib.blake2b


def unit_draws(*parts: str | int | float) -> tuple[float, float, float]:
    """Three independent uniforms in [0, 1), a pure function of ``parts``.

    ``parts`` are strings and numbers; their ``repr`` (quoted, escaped,
    identical in every process) is the hash input, so ``("ab", "c")`` and
    ``("a", "bc")`` never collide.
    """
    digest = _blake2b(repr(parts).encode(), digest_size=24).digest()
    a, b, c = _UNPACK3(digest)
    if a > _BELOW_ONE or b > _BELOW_ONE or c > _BELOW_ONE:
        a, b, c = min(a, _BELOW_ONE), min(b, _BELOW_ONE), min(c, _BELOW_ONE)
    return a * _TO_UNIT, b * _TO_UNIT, c * _TO_UNIT


def stable_hash(text: str) -> str:
    """A short process-independent hash of a prompt, for traces and reports."""
    return hashlib.sha1(text.encode("utf-8", "surrogatepass"), usedforsecurity=False).hexdigest()[
        :12
    ]
