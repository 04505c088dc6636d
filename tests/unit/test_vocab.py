"""The op vocabulary: the Literal, the enum and OPS agree; nothing depends on an op's position."""

from __future__ import annotations

import inspect
from typing import get_args

import pytest

from swaysim import AsyncDummyDifferentialBackend, BlockingView, DummyView
from swaysim._backend.models import ModeModel
from swaysim._types import DummyResponses
from swaysim._vocab import (
    DEFAULT_TOP_K,
    GENERATE_OP,
    LOGPROB_OF_OP,
    NEXT_TOKEN_DIST_BATCH_OP,
    NEXT_TOKEN_DIST_OP,
    OP_SLOTS,
    OPS,
    ROLLING_LOGPROB_OP,
    VIEW_KINDS,
    Op,
    OpKind,
    ViewKind,
    is_view_selector,
)


def test_the_literal_the_enum_and_ops_list_the_same_names_in_the_same_order() -> None:
    assert get_args(Op) == OPS == tuple(OpKind)
    assert OPS == (
        GENERATE_OP,
        LOGPROB_OF_OP,
        ROLLING_LOGPROB_OP,
        NEXT_TOKEN_DIST_OP,
        NEXT_TOKEN_DIST_BATCH_OP,
    )
    assert get_args(ViewKind) == VIEW_KINDS


def test_op_names_are_plain_strings_so_reprs_and_seeded_hashes_see_the_name() -> None:
    assert [kind.op for kind in OpKind] == list(OpKind)
    assert {type(kind.op) for kind in OpKind} == {type(op) for op in OPS} == {str}
    assert [repr(kind.op) for kind in OpKind] == [repr(str(kind)) for kind in OpKind]


def test_each_op_is_a_view_method_with_its_own_counter() -> None:
    for op in OPS:
        assert callable(getattr(DummyView, op))
    assert [OP_SLOTS[op] for op in OPS] == list(range(len(OPS)))
    assert len(ModeModel("base", DummyResponses()).calls) == len(OPS)


async def test_statistics_name_each_op_whatever_order_they_are_called_in() -> None:
    backend = AsyncDummyDifferentialBackend(base=DummyResponses(generations={"p": "x"}))
    async with backend.as_base() as view:
        await view.next_token_dist_batch(["p", "q"])
        await view.rolling_logprob("a b")
        await view.generate("p", max_new_tokens=1)
        await view.rolling_logprob("a b c")
    assert dict(backend.statistics().calls_per_op) == {
        "generate": 1,
        "next_token_dist_batch": 1,
        "rolling_logprob": 2,
    }


@pytest.mark.parametrize(
    "method",
    [
        DummyView.next_token_dist,
        DummyView.next_token_dist_batch,
        BlockingView.next_token_dist,
        BlockingView.next_token_dist_batch,
    ],
)
def test_every_next_token_op_defaults_to_the_shared_top_k(method: object) -> None:
    assert inspect.signature(method).parameters["top_k"].default == DEFAULT_TOP_K  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("selector", "valid"),
    [
        ("base", True),
        ("null", True),
        ("scaled_0.50", True),
        ("scaled_-1.25", True),
        ("null_42", True),
        ("null_42_rank2.00", True),
        ("scaled_1", False),
        ("finetuned", False),
        ("", False),
        (3, False),
    ],
)
def test_a_view_selector_is_a_kind_or_a_well_formed_id(selector: object, valid: bool) -> None:
    assert is_view_selector(selector) is valid
