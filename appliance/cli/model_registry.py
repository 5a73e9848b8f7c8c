"""`appliance models add | use | list` (and the `probe` child): air-gapped model changes.

`add FILE.gguf` checks, before anything is recorded, that the file is a GGUF with a
known architecture and that it fits the RAM budget beside the other model; copies it into
the models dir under a temporary name (hashing it), checks that llama.cpp loads that copy
(in a child process: a failed assert in llama.cpp aborts the process that runs it; the
child confines itself like the parser child before it reads a byte: unprivileged when
`add` runs as root, no_new_privs, Landlock, limits, an empty environment; it reads the
copy through an inherited descriptor) and that a chat model has a chat template; then
renames the copy into place and records it with its SHA-256. `use NAME`
makes it the active model of its role. No network is involved at any step.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from appliance.config.paths import data_dir, models_dir
from appliance.config.schema import Settings
from appliance.models.registry import Registry, RegistryError
from appliance.models.sizing import GgufInfo, read_gguf_info
from appliance.runtime.files import open_named_file

MiB = 1024 * 1024
EMBEDDING_ARCHITECTURES = ("bert", "nomic-bert", "jina-bert-v2", "modern-bert", "t5encoder")
PROBE_CPU_S = 1200  # CPU seconds for the load, beside the 600 s wall-clock timeout


def probe_command(path: str) -> list[str]:
    if getattr(sys, "frozen", False):  # the bundle: its own executable
        return [sys.executable, "models", "probe", path]
    return [sys.executable, "-m", "appliance", "models", "probe", path]


def _confine_probe(path: Path) -> dict[str, object]:
    """The probe child, after loading its libraries and before llama.cpp reads a byte of
    the untrusted GGUF: the parser's confinement (appliance/ingest/confine.py: as root,
    an unprivileged user; no_new_privs; Landlock: the runtime and this one file
    read-only, nothing else, no TCP), writing no file, and CPU and core-dump limits."""
    import resource

    from appliance.ingest.confine import Policy, confine

    for which, limit in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_CPU, PROBE_CPU_S)):
        hard = resource.getrlimit(which)[1]
        capped = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
        resource.setrlimit(which, (capped, capped))
    confined = confine(Policy(read=[str(path)], fsize_mb=0))
    return {"uid": confined.uid, "no_new_privs": confined.no_new_privs,
            "landlock_abi": confined.landlock_abi}  # fmt: skip


def probe(path: Path) -> int:
    """Child process: load the model's weights with llama.cpp, print what it says. It
    starts as its parent's user (the interpreter and libraries may be where only root
    can read) and confines itself before it opens `path`."""
    import llama_cpp

    from appliance.engine.cpu_backends import ensure_loaded

    ensure_loaded()
    llama_cpp.llama_backend_init()
    confined = _confine_probe(path)
    params = llama_cpp.llama_model_default_params()
    params.use_extra_bufts = False
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        print(json.dumps({"loaded": False}))
        return 1
    template = llama_cpp.llama_model_chat_template(model, None)
    print(json.dumps({
        "loaded": True,
        "n_params": int(llama_cpp.llama_model_n_params(model)),
        "chat_template": bool(template),
        **confined,
    }))  # fmt: skip
    llama_cpp.llama_model_free(model)
    return 0


def _probe_env() -> dict[str, str]:
    """A minimal environment: none of the caller's (sudo's) variables reach the child."""
    env = {"PATH": os.defpath, "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}
    # numpy's OpenBLAS (imported with llama_cpp) would start a thread per CPU: the child
    # must have one thread when it confines itself (Landlock binds the calling thread)
    env["OPENBLAS_NUM_THREADS"] = "1"
    if not getattr(sys, "frozen", False):  # `-m appliance` from wherever it is installed
        env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    if "LLAMA_CPP_LIB_PATH" in os.environ:
        env["LLAMA_CPP_LIB_PATH"] = os.environ["LLAMA_CPP_LIB_PATH"]
    return env


def _probe_in_child(path: Path, fd: int | None = None) -> dict[str, object]:
    """Load the model in a child that confines itself (unprivileged when we are root, no
    new privileges, Landlock, limits) before it reads the file, in a minimal environment.
    It reads the file through the descriptor `fd` (the staged copy: exactly the bytes
    that get registered), else through `path`."""
    # read-only, whatever `fd` was opened for: the child cannot change what was hashed
    readable = (
        open_named_file(path)
        if fd is None
        else os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
    )
    try:
        run = subprocess.run(
            probe_command(f"/proc/self/fd/{readable}"), pass_fds=(readable,), cwd="/",
            env=_probe_env(), capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
    finally:
        os.close(readable)
    lines = [line for line in run.stdout.splitlines() if line.startswith("{")]
    result: dict[str, object] = json.loads(lines[-1]) if lines else {"loaded": False}
    if run.returncode != 0 or not result.get("loaded"):
        detail = (run.stderr.strip().splitlines() or [f"exit code {run.returncode}"])[-1]
        raise RegistryError(f"{path}: llama.cpp cannot load this model ({detail[-300:]})")
    return result


def _check_source(path: Path) -> None:
    """The file exists, is a regular file, and its path follows no link another user
    owns (run as root): refused before even its header is read."""
    try:
        os.close(open_named_file(path))
    except FileNotFoundError:
        raise RegistryError(f"{path}: no such file") from None


def _role_of(info: GgufInfo, asked: str | None) -> str:
    if asked:
        return asked
    if info.architecture in EMBEDDING_ARCHITECTURES or not info.causal:
        return "embedding"
    return "chat"


def _fit(settings: Settings, info: GgufInfo, role: str) -> tuple[bool, str]:
    """Whether the plan with `info` in `role` (the other role as configured) fits."""
    from appliance.models.configured import plan_for, plan_with

    plan = plan_for(settings, prepare=False)
    new = plan_with(
        settings,
        info if role == "chat" else plan.chat.info,
        info if role == "embedding" else plan.embedding.info,
    )
    return new.fits, new.explain() + (
        f"; chat n_ctx {new.chat.n_ctx} x {new.chat.slots} slots" if new.fits else ""
    )


def _registry(settings: Settings) -> Registry:
    return Registry.load(models_dir(settings))


def add(settings: Settings, path: Path, name: str | None, role: str | None) -> int:
    try:
        _check_source(path)
        info = read_gguf_info(path)  # ValueError naming the file when it is not a GGUF
        role = _role_of(info, role)
        fits, numbers = _fit(settings, replace(info, path=path), role)
        if not fits:
            raise RegistryError(f"{path}: does not fit: {numbers}")
        registry = _registry(settings)
        with registry.staging(path, name or path.stem, role) as staged:
            probed = _probe_in_child(path, staged.fd)  # the copy: what gets registered
            if role == "chat" and not probed.get("chat_template"):
                raise RegistryError(
                    f"{path}: no chat template in the GGUF (tokenizer.chat_template): the "
                    "appliance needs an instruct/chat model"
                )
            entry = registry.commit(staged, role, info.architecture)
    except (RegistryError, ValueError, OSError) as exc:
        print(f"appliance models add: {exc}", file=sys.stderr)
        return 1
    print(
        f"added {entry.name}: {role} model ({info.architecture}, {entry.bytes / MiB:.0f} MiB, "
        f"{probed.get('n_params', 0):,} parameters), sha256 {entry.sha256}\n"
        f"fits: {numbers}\n"
        f"switch to it: appliance models use {entry.name}"
    )
    return 0


def _indexed_documents(settings: Settings) -> int:
    """Documents in the index, read from the journal (the server may be running)."""
    from appliance.store.journal import count_documents

    return count_documents(data_dir(settings) / "journal.sqlite3")


def use(settings: Settings, name: str, url: str, key: str | None) -> int:
    registry = _registry(settings)
    try:
        entry = registry.models.get(name)
        if entry is not None and entry.role == "embedding":
            documents = _indexed_documents(settings)
            if documents and registry.active.get("embedding") != name:
                return _switch_on_server(url, key, name, documents)
        entry = registry.use(name)
    except RegistryError as exc:
        print(f"appliance models use: {exc}", file=sys.stderr)
        return 1
    setting = "models.chat_model" if entry.role == "chat" else "models.embedding_model"
    print(
        f'{entry.name} is now the {entry.role} model wherever {setting} is "default".\n'
        "Restart the appliance to load it: systemctl restart appliance"
    )
    return 0


def _switch_on_server(url: str, key: str | None, name: str, documents: int) -> int:
    """The index holds vectors of the current model: the running server re-embeds every
    chunk into a new collection, then swaps (appliance/ingest/embedding_switch.py)."""
    import asyncio
    import time

    from appliance.client import ApiError, ApplianceClient

    async def run() -> int:
        async with ApplianceClient(url, key) as client:
            status = await client.switch_embedding(name)
            print(f"re-embedding {documents} documents with {name} into "
                  f"{status.target_collection}; search goes on meanwhile")  # fmt: skip
            while status.state == "running":
                await asyncio.sleep(1)
                status = await client.embedding_switch()
                print(f"\r  {status.documents_done}/{status.documents_total} documents, "
                      f"{status.chunks_done} chunks", end="", flush=True)  # fmt: skip
            print()
            if status.state != "done":
                print(f"appliance models use: the switch failed: {status.error}", file=sys.stderr)
                return 1
            took = (status.finished_at or time.time()) - (status.started_at or time.time())
            print(f"switched: search and ingestion use {name} ({status.collection}), in "
                  f"{took:.0f} s; it stays the embedding model after a restart")  # fmt: skip
            return 0

    try:
        return asyncio.run(run())
    except ApiError as exc:
        print(
            f"appliance models use: the index holds {documents} documents, so the running "
            f"appliance must re-embed them, and it answered: {exc}",
            file=sys.stderr,
        )
        return 1


def list_models(settings: Settings) -> int:
    registry = _registry(settings)
    if not registry.models:
        print("no models added (appliance models add FILE.gguf); the defaults are in use")
        return 0
    print(f"{'name':<32} {'role':<10} {'MiB':>7} {'arch':<12} active  sha256")
    for entry in sorted(registry.models.values(), key=lambda e: (e.role, e.name)):
        active = "yes" if registry.active.get(entry.role) == entry.name else ""
        print(f"{entry.name:<32} {entry.role:<10} {entry.bytes / MiB:>7.0f} "
              f"{entry.architecture:<12} {active:<7} {entry.sha256[:16]}")  # fmt: skip
    return 0
