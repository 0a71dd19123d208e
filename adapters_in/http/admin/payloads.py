"""The admin payloads' shape (pydantic), shared by the admin API and `pulse … apply FILE`."""

from __future__ import annotations

import json
import re
from datetime import time
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from pulse.core.calendar import WEEKDAYS
from pulse.core.dimensions import MetricsDocument, ShiftsDocument
from pulse.core.errors import ValidationFailed
from pulse.core.model import Goal, MetricID, ShiftRule

HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MetricGoalBody(_Strict):
    metricId: MetricID
    defaultGoal: float = Field(ge=0, description="per agent per workday")
    yellowFloorPct: float = Field(ge=0, le=1)


class MetricsBody(_Strict):
    """`PUT /admin/dim-metric/{month}`: the file `pulse metrics apply` takes, its `month` optional
    (the path names it)."""

    month: str | None = Field(None, pattern=MONTH)
    version: int = Field(ge=1)
    metrics: list[MetricGoalBody] = Field(min_length=1)
    agents: dict[str, dict[MetricID, Annotated[float, Field(ge=0)]]] = Field(
        default_factory=dict,
        description="per-agent goals overriding the month's: AgentKey → {CALLS: 80}",
    )

    @field_validator("metrics")
    @classmethod
    def _once_each(cls, value: list[MetricGoalBody]) -> list[MetricGoalBody]:
        ids = [m.metricId for m in value]
        twice = sorted({m.value for m in ids if ids.count(m) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} named more than once")
        return value

    def document(self, month: str) -> MetricsDocument:
        goals = {
            m.metricId: Goal(m.metricId, m.defaultGoal, m.yellowFloorPct) for m in self.metrics
        }
        return MetricsDocument(month, self.version, goals, self.agents)


class MetricsFile(MetricsBody):
    """`pulse metrics apply FILE`: the body with the month the path would carry."""

    month: str = Field(pattern=MONTH)


class RollbackBody(_Strict):
    """`POST /admin/dim-metric/{month}/rollback`, `POST /admin/dim-shift/rollback`."""

    to: int = Field(ge=1, description="the version to apply again")


class AckBody(_Strict):
    """`POST /admin/incidents/{id}/ack`: `{}`, or `{"resolve": true}` to resolve it too."""

    resolve: bool = False


def _every_day() -> list[int | str]:
    return list(range(7))


class ShiftBody(_Strict):
    key: str | None = Field(None, description="default: the name upper-cased")
    name: str = Field(min_length=1)
    start: str
    end: str
    days: list[int | str] = Field(default_factory=lambda: _every_day(), min_length=1)

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not HHMM.match(value):
            raise ValueError(f"{value!r} is not a local time as HH:MM (00:00–23:59)")
        return value

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int | str]) -> list[int | str]:
        for day in value:
            if isinstance(day, int) and not 0 <= day <= 6:
                raise ValueError(f"{day} is not a weekday (0 = Mon … 6 = Sun)")
            if isinstance(day, str) and day[:3].title() not in WEEKDAYS:
                raise ValueError(f"{day!r} is not a weekday (Mon … Sun)")
        return value

    def rule(self) -> ShiftRule:
        days = frozenset(
            d if isinstance(d, int) else WEEKDAYS.index(d[:3].title()) for d in self.days
        )
        return ShiftRule(
            key=self.key or self.name.upper().replace(" ", "_"),
            name=self.name,
            start=time.fromisoformat(self.start),
            end=time.fromisoformat(self.end),
            days=days,
        )


class ShiftsBody(_Strict):
    """`PUT /admin/dim-shift` and `pulse shifts apply FILE`."""

    version: int = Field(ge=1)
    allowUnassigned: bool = False
    shifts: list[ShiftBody] = Field(min_length=1)

    def document(self) -> ShiftsDocument:
        return ShiftsDocument(
            self.version, tuple(s.rule() for s in self.shifts), self.allowUnassigned
        )


def readable(exc: ValidationError) -> str:
    """`metrics[0].defaultGoal: Input should be greater than or equal to 0; …`."""
    parts = []
    for err in exc.errors():
        where = ""
        for loc in err["loc"]:
            where += f"[{loc}]" if isinstance(loc, int) else (f".{loc}" if where else str(loc))
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts)


def parse(model: type[Any], raw: bytes | str) -> Any:
    """The model from JSON text, or `ValidationFailed` naming each field and its problem."""
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationFailed(f"body: not valid JSON ({exc})") from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(readable(exc)) from None
