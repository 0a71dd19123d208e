"""What the Power BI adapter works with: POWERBI__* once checked, built by bootstrap from settings."""

from __future__ import annotations

from dataclasses import dataclass

from pulse.adapters_out.entra.config import EntraConfig
from pulse.adapters_out.powerbi.limiter import Budgets


@dataclass(frozen=True, slots=True)
class PowerBIConfig:
    """One workspace's push dataset and the limits the sink keeps to (DESIGN §4)."""

    entra: EntraConfig
    workspace_id: str
    dataset_id: str | None  # None: found by `dataset_name`
    dataset_name: str
    api_base_url: str
    timeout_sec: float
    budgets: Budgets
    max_rows_per_request: int
    append_timeout_sec: float
