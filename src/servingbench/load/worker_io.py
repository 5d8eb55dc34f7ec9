"""What both load-generator processes do alike: read their plan, write their result, measure their own CPU."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from servingbench.load.contracts import WorkerPlan

Plan = TypeVar("Plan", bound=WorkerPlan)


def read_plan(argv: list[str], plan_type: type[Plan]) -> Plan:
    """The plan named on the command line (`python -m <worker> PLAN.json`)."""
    return plan_type.model_validate_json(Path(argv[1]).read_text())


def write_result(plan: WorkerPlan, result: BaseModel) -> None:
    if plan.result_path is None:
        raise ValueError(f"plan {plan.trial_id} names no result_path")
    plan.result_path.write_text(result.model_dump_json())


def cpu_percent(at_start: os.times_result, at_end: os.times_result, start_ns: int, end_ns: int) -> float:
    """This process's CPU between two os.times() readings, % of one core over the span."""
    busy_s = (at_end.user - at_start.user) + (at_end.system - at_start.system)
    return 100.0 * busy_s / max((end_ns - start_ns) / 1e9, 1e-9)
