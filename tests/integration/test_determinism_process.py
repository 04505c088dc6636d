"""The null view's numbers are the same in every process, whatever PYTHONHASHSEED says."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np

import swaysim

PROMPTS = ["", "The capital of France is", "héllo ✓", "prompt 7"]
NULL_VIEWS = [(0, 1.0), (42, 1.0), (42, 2.0), (2**40, 0.5)]

CHILD = textwrap.dedent(
    """
    import json, sys
    import swaysim
    from swaysim import AsyncDummyDifferentialBackend

    prompts, views = json.loads(sys.argv[1])

    async def collect():
        backend = AsyncDummyDifferentialBackend()
        out = []
        for seed, rank_scale in views:
            async with backend.as_null_adapter(seed, rank_scale=rank_scale) as view:
                for dist in await view.next_token_dist_batch(prompts):
                    out.append(dist.logprobs.tobytes().hex())
        return out

    print(json.dumps({
        "hash": hash("swaysim"),
        "asyncio": swaysim.run(collect, backend="asyncio"),
        "trio": swaysim.run(collect, backend="trio"),
    }))
    """
)


def expected_hex() -> list[str]:
    """The seed's definition, computed here: default_rng(seed + md5(prompt) % 1_000_003)."""
    base = np.array([-0.1] + [-5.0] * 7, dtype=np.float32)
    out = []
    for seed, rank_scale in NULL_VIEWS:
        for prompt in PROMPTS:
            digest = int(hashlib.md5(prompt.encode("utf-8")).hexdigest()[:8], 16)
            rng = np.random.default_rng(seed + digest % 1_000_003)
            noise = rng.normal(0.0, 0.02 * math.sqrt(rank_scale), size=8).astype(np.float32)
            noisy = base + noise
            probs = np.exp(noisy - noisy.max())
            probs /= probs.sum()
            out.append(np.log(probs).astype(np.float32).tobytes().hex())
    return out


def test_null_view_numbers_agree_across_processes_and_hash_seeds() -> None:
    argument = json.dumps([PROMPTS, NULL_VIEWS])
    children = []
    for hash_seed in ("0", "1", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        children.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, argument],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    results = []
    for child in children:
        stdout, stderr = child.communicate(timeout=120)
        assert child.returncode == 0, stderr
        results.append(json.loads(stdout))

    # The children really did salt str hashes differently...
    assert len({result["hash"] for result in results}) > 1
    # ...and yet every process, on either loop, computed the seed's numbers.
    expected = expected_hex()
    for result in results:
        assert result["asyncio"] == expected
        assert result["trio"] == expected


async def test_this_process_agrees_with_the_children_reference() -> None:
    backend = swaysim.AsyncDummyDifferentialBackend()
    got = []
    for seed, rank_scale in NULL_VIEWS:
        async with backend.as_null_adapter(seed, rank_scale=rank_scale) as view:
            got.extend([(await view.next_token_dist(p)).logprobs.tobytes().hex() for p in PROMPTS])
    assert got == expected_hex()
