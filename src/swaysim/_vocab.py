"""The shared vocabulary: op names, view kinds, how a view is selected, and shared defaults.

Two spellings of the op names, on purpose:

- :data:`Op`, a ``Literal`` of the five names, is what the typed API takes
  (``FaultRule(ops=("generate",))``, ``Ask(op=...)``, a scenario's schema):
  users write plain strings and mypy and pydantic check them.
- :class:`OpKind`, a ``StrEnum`` of the same names in the same order, is the
  one runtime list they come from: :data:`OPS` is derived from it, and code
  that needs a named op writes ``OpKind.GENERATE``. A member equals its
  string, but swaysim hands out plain strings (``OPS``, the ``*_OP``
  constants below): what reaches a trace, a statistic, an exception or a
  seeded draw (which hashes ``repr``) is exactly the op's name.

tests/unit/test_vocab.py checks that the ``Literal`` and the enum agree.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Literal, get_args

if TYPE_CHECKING:
    from collections.abc import Mapping

Op = Literal[
    "generate", "logprob_of", "rolling_logprob", "next_token_dist", "next_token_dist_batch"
]
ViewKind = Literal["base", "ft", "scaled", "null"]


class OpKind(StrEnum):
    """The five ops of a view, in the order statistics and messages list them."""

    GENERATE = "generate"
    LOGPROB_OF = "logprob_of"
    ROLLING_LOGPROB = "rolling_logprob"
    NEXT_TOKEN_DIST = "next_token_dist"
    NEXT_TOKEN_DIST_BATCH = "next_token_dist_batch"

    @property
    def op(self) -> Op:
        """The op's name as a plain string (what traces, statistics and draws see)."""
        return self.value


OPS: Final[tuple[Op, ...]] = tuple(kind.op for kind in OpKind)
"""Every op name, as plain strings, in :class:`OpKind` order."""
OP_SLOTS: Final[Mapping[str, int]] = {op: slot for slot, op in enumerate(OPS)}
"""Each op's position in :data:`OPS`, e.g. its counter in a per-op list (derived from OPS)."""

GENERATE_OP: Final = OpKind.GENERATE.op
LOGPROB_OF_OP: Final = OpKind.LOGPROB_OF.op
ROLLING_LOGPROB_OP: Final = OpKind.ROLLING_LOGPROB.op
NEXT_TOKEN_DIST_OP: Final = OpKind.NEXT_TOKEN_DIST.op
NEXT_TOKEN_DIST_BATCH_OP: Final = OpKind.NEXT_TOKEN_DIST_BATCH.op

VIEW_KINDS: Final[tuple[ViewKind, ...]] = get_args(ViewKind)

DEFAULT_TOP_K: Final = 256
"""``top_k`` of a next-token op when the caller gives none (dlm-sway's default)."""

_VIEW_ID: Final = re.compile(r"^(?:base|ft|scaled_-?\d+\.\d\d|null_\d+(?:_rank\d+\.\d\d)?)$")


def is_view_selector(selector: object) -> bool:
    """Whether ``selector`` names views: a kind (``"null"``) or a well-formed id (``"null_42"``)."""
    return isinstance(selector, str) and (selector in VIEW_KINDS or bool(_VIEW_ID.match(selector)))


def view_matches(selectors: tuple[str, ...], kind: str, view_id: str) -> bool:
    """Empty selectors match every view; otherwise the kind or the exact id must be listed."""
    return not selectors or kind in selectors or view_id in selectors
