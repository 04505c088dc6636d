"""The scenario schema's building blocks: bounded numbers, printable names, the strict base model.

Shared by :mod:`swaysim._scenario.schema` and :mod:`swaysim._scenario.expect_schema`.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
)

from swaysim._printable import printable
from swaysim._validation import MAX_COUNT, MAX_MAGNITUDE, MAX_SECONDS, MAX_SEED

__all__ = [
    "RUNNER_PATTERN",
    "Count",
    "Name",
    "Number",
    "PositiveCount",
    "PositiveSeconds",
    "Seconds",
    "Seed",
    "Spec",
    "VerdictName",
]

Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
PositiveCount = Annotated[int, Field(ge=1, le=MAX_COUNT)]
Seconds = Annotated[float, Field(ge=0.0, le=MAX_SECONDS)]
PositiveSeconds = Annotated[float, Field(gt=0.0, le=MAX_SECONDS)]
Number = Annotated[float, Field(ge=-MAX_MAGNITUDE, le=MAX_MAGNITUDE)]
VerdictName = Literal["PASS", "FAIL", "WARN", "SKIP", "ERROR"]


def _no_control_characters(value: str) -> str:
    """Names reach terminals, file names and XML: no control or format characters."""
    unsafe = printable(value)
    if unsafe != value:
        raise ValueError(f"must not contain control characters (it reads {unsafe})")
    return value


Name = Annotated[str, AfterValidator(_no_control_characters)]
"""A scenario, probe or fault rule name: printable text only."""
RUNNER_PATTERN: Final = (
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)


class Spec(BaseModel):
    """Strict: exact types, unknown keys refused, no NaN, frozen; field docstrings describe."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        use_attribute_docstrings=True,
    )
