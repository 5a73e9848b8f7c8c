"""`appliance models`: each model, its file, size, context, estimated RAM, and the verdict;
`models add | use | list` (and the `probe` child) are in `model_registry`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from appliance.cli import options
from appliance.config.schema import Settings

if TYPE_CHECKING:
    from appliance.models.sizing import SizingPlan

MiB = 1024 * 1024


def register(commands: options.Commands) -> None:
    models = commands.add_parser(
        "models", help="show (and prepare) models and whether they fit; add | use | list"
    )
    models.add_argument("--no-prepare", action="store_true", help="do not fetch or convert")
    models.set_defaults(func=cmd_models)
    verbs = models.add_subparsers(dest="models_command")
    add = verbs.add_parser(
        "add", help="check a GGUF (loads, fits, chat template) and record it with its SHA-256"
    )
    add.add_argument("file", help="the .gguf file")
    add.add_argument("--name", help="name to use it by (default: the file name)")
    add.add_argument("--role", choices=["chat", "embedding"], help="default: from the GGUF")
    use = verbs.add_parser(
        "use",
        help="make an added model the active one of its role (an embedding model with "
        "documents indexed: the running server re-embeds them, then swaps)",
    )
    use.add_argument("name")
    options.add_client_options(use)
    verbs.add_parser("list", help="the added models, their roles and checksums")
    probe = verbs.add_parser("probe")  # internal: the child process of `models add`
    probe.add_argument("file")


def cmd_models(args: argparse.Namespace) -> int:
    from appliance.cli import model_registry as registry

    command = getattr(args, "models_command", None)
    if command == "probe":  # the child `models add` starts: no config needed
        return registry.probe(Path(args.file))
    settings = options.settings(args)
    if command == "add":
        return registry.add(settings, Path(args.file), args.name, args.role)
    if command == "use":
        url, key = options.server_url(args, settings), options.api_key(args, settings)
        return registry.use(settings, args.name, url, key)
    if command == "list":
        return registry.list_models(settings)
    return print_models(settings, prepare=not args.no_prepare)


def format_plan(plan: SizingPlan) -> str:
    from appliance.models.sizing import RUNTIME_OVERHEAD_BYTES

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
    from appliance.models.configured import plan_for
    from appliance.models.locate import ModelError
    from appliance.models.sizing import SizingError

    try:
        plan = plan_for(settings, prepare=prepare)
    except (ModelError, SizingError, ValueError, FileNotFoundError) as exc:
        print(f"appliance models: {exc}", file=sys.stderr)
        return 1
    print(format_plan(plan))
    return 0 if plan.fits else 1
