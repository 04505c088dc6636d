"""What a probe reports: its verdict, numbers and evidence, and a null calibration.

Results are plain frozen values so that any runner (the reference one or a
user's) can build, compare and serialise them; ``to_dict`` gives JSON whose
timing-free part is identical across loops, concurrency and processes.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from swaysim.errors import InjectedFault

__all__ = ["NullCalibration", "ProbeResult", "Verdict", "error_evidence"]


class Verdict(enum.StrEnum):
    """A probe's outcome. ERROR means it could not measure, never a measured "no"."""

    PASS = "PASS"
    FAIL = "FAIL"
    WARN = "WARN"
    SKIP = "SKIP"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class NullCalibration:
    """A null-adapter probe's statistic over K null views: the z-score denominator."""

    probe: str
    target: str
    values: tuple[float, ...]
    mean: float
    std: float
    std_floor: float

    @property
    def degenerate(self) -> bool:
        """Whether std is below the floor (z-scores would be absurd)."""
        return not self.std >= self.std_floor


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """What a probe found. ``raw`` is the measured statistic; ``score`` a 0..1 strength.

    ``z`` is set when the probe was calibrated against a null adapter and the
    null was not degenerate. ``duration`` is loop seconds from the probe's
    first request to its last answer.
    """

    name: str
    kind: str
    verdict: Verdict
    score: float | None = None
    raw: float | None = None
    z: float | None = None
    base_value: float | None = None
    ft_value: float | None = None
    evidence: Mapping[str, object] = field(default_factory=dict)
    message: str = ""
    duration: float = 0.0

    def to_dict(self, *, include_timing: bool = True) -> dict[str, Any]:
        """JSON-ready; without timing, identical across loops and concurrency."""
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind,
            "verdict": self.verdict.value,
            "score": _json_float(self.score),
            "raw": _json_float(self.raw),
            "z": _json_float(self.z),
            "base_value": _json_float(self.base_value),
            "ft_value": _json_float(self.ft_value),
            "evidence": _json_ready(self.evidence),
            "message": self.message,
        }
        if include_timing:
            out["duration"] = self.duration
        return out


def _json_float(value: float | None) -> float | str | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else repr(number)


def _json_ready(value: object) -> object:
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float):
        return _json_float(value)
    item = getattr(value, "item", None)
    if item is not None:
        return _json_ready(item())
    return str(value)


def error_evidence(cause: BaseException | str) -> dict[str, object]:
    """An ERROR result's evidence: the error's type, and the firing when a fault was injected."""
    if isinstance(cause, str):
        return {"error": cause}
    evidence: dict[str, object] = {"error": type(cause).__name__}
    if isinstance(cause, InjectedFault):
        evidence.update(
            fault_rule=cause.rule_name,
            fault_op=cause.op,
            fault_view=cause.view_id,
            call=cause.call_index,
        )
    return evidence
