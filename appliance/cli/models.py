"""`appliance models`: each model, its file, size, context, estimated RAM, and the verdict."""

from __future__ import annotations

import sys

from appliance.config.schema import Settings
from appliance.models.locate import ModelError
from appliance.models.sizing import RUNTIME_OVERHEAD_BYTES, SizingError, SizingPlan
from appliance.wiring import plan_for

MiB = 1024 * 1024


def format_plan(plan: SizingPlan) -> str:
    m = plan.machine
    lines = [
        f"machine: {m.cores} cores, {m.total_ram / MiB:.0f} MiB RAM "
        f"({m.available_ram / MiB:.0f} MiB available); budget {plan.budget_bytes / MiB:.0f} MiB",
        f"{'role':<10} {'name':<34} {'file':<40} {'size MiB':>9} {'ctx':>6} {'slots':>5} "
        f"{'threads':>7} {'est. MiB':>9}",
    ]
    for p in (plan.chat, plan.embedding):
        lines.append(
            f"{p.role:<10} {p.info.name[:34]:<34} {p.info.path.name[:40]:<40} "
            f"{p.info.file_size / MiB:>9.1f} {p.n_ctx:>6} {p.slots:>5} {p.n_threads:>7} "
            f"{p.estimated_bytes / MiB:>9.1f}"
        )
    lines.append(f"{'runtime':<10} {'':<34} {'':<40} {'':>9} {'':>6} {'':>5} {'':>7} "
                 f"{RUNTIME_OVERHEAD_BYTES / MiB:>9.1f}")  # fmt: skip
    verdict = "fits" if plan.fits else "DOES NOT FIT"
    lines.append(
        f"total ~{plan.total_bytes / MiB:.0f} MiB of {plan.budget_bytes / MiB:.0f} MiB budget: "
        f"{verdict}"
    )
    for p in (plan.chat, plan.embedding):
        lines.append(f"  {p.role} file: {p.info.path}")
    return "\n".join(lines)


def print_models(settings: Settings, prepare: bool) -> int:
    try:
        plan = plan_for(settings, prepare=prepare)
    except (ModelError, SizingError, ValueError, FileNotFoundError) as exc:
        print(f"appliance models: {exc}", file=sys.stderr)
        return 1
    print(format_plan(plan))
    return 0 if plan.fits else 1
