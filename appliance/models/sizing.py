"""Size the models for this machine: threads, context, batch and RAM estimates.

The estimate of a model's RAM is its file size (weights are memory-mapped and
touched in full) plus the KV cache for its context plus a compute-buffer margin.
The appliance refuses to start, with the numbers, when the sum exceeds the budget.
A chat model served by an external server (`generation.backend = "openai"`) is not
loaded here: its plan says so and counts no bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import psutil

from appliance.engine.cpu_share import usable_cores
from appliance.models.gguf_header import read_header_and_parameters

MiB = 1024 * 1024
COMPUTE_MARGIN_BYTES = 48 * MiB
RUNTIME_OVERHEAD_BYTES = 256 * MiB  # Python, Litestar, store, buffers
AUTO_CTX_CAP = 4096
MIN_CTX = 512
CTX_STEP = 256
AUTO_PARALLEL = 16  # slots when RAM allows (fewer as the budget requires)
# Template, instruction and question around the document text of a prompt.
PROMPT_OVERHEAD_TOKENS = 192


class SizingError(Exception):
    """The configured models do not fit; the message carries the numbers."""


@dataclass(frozen=True)
class MachineInfo:
    total_ram: int
    available_ram: int
    cores: int

    @classmethod
    def read(cls) -> MachineInfo:
        mem = psutil.virtual_memory()
        cores = usable_cores()  # the affinity mask, capped by the cgroup's CPU quota
        physical = psutil.cpu_count(logical=False) or cores
        return cls(mem.total, mem.available, max(1, min(cores, physical)))


@dataclass(frozen=True)
class GgufInfo:
    """What sizing needs from a GGUF header."""

    path: Path
    name: str
    architecture: str
    file_size: int
    train_ctx: int
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim_k: int
    head_dim_v: int
    causal: bool
    n_params: int | None = None  # weights, from the tensor infos (None: not counted)

    def kv_bytes_per_token(self) -> int:
        """F16 K and V for every layer."""
        return self.n_layer * self.n_head_kv * (self.head_dim_k + self.head_dim_v) * 2


def read_gguf_info(path: Path) -> GgufInfo:
    """Read the header of a GGUF file; raise ValueError naming the file when it is not one."""
    try:
        header, n_params = read_header_and_parameters(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable GGUF file ({exc})") from exc

    def _field(key: str, default: object = None) -> object:
        value = header.get(key)
        return default if value is None else value

    arch = str(_field("general.architecture", ""))
    if not arch:
        raise ValueError(f"{path}: GGUF header has no general.architecture")

    def num(key: str, default: int | None = None) -> int:
        value = _field(f"{arch}.{key}", default)
        if value is None:
            raise ValueError(f"{path}: GGUF header lacks {arch}.{key}")
        if isinstance(value, list):  # per-layer arrays: take the largest
            value = max(value)
        return int(cast(Any, value))

    n_embd = num("embedding_length")
    n_head = num("attention.head_count")
    n_head_kv = num("attention.head_count_kv", n_head)
    head_dim = n_embd // max(1, n_head)
    causal = bool(_field(f"{arch}.attention.causal", True))
    return GgufInfo(
        path=path,
        name=str(_field("general.name", path.stem)),
        architecture=arch,
        file_size=path.stat().st_size,
        train_ctx=num("context_length"),
        n_layer=num("block_count"),
        n_embd=n_embd,
        n_head=n_head,
        n_head_kv=n_head_kv,
        head_dim_k=num("attention.key_length", head_dim),
        head_dim_v=num("attention.value_length", head_dim),
        causal=causal,
        n_params=n_params,
    )


@dataclass(frozen=True)
class ModelPlan:
    role: str
    info: GgufInfo
    n_ctx: int  # per request
    n_batch: int
    n_threads: int
    slots: int = 1
    contexts: int = 1  # contexts over the same memory-mapped weights
    loaded: bool = True  # False: an external server runs it (n_ctx and slots are its)

    @property
    def kv_bytes(self) -> int:
        if not self.info.causal or not self.loaded:
            return 0
        return self.info.kv_bytes_per_token() * self.n_ctx * self.slots

    @property
    def estimated_bytes(self) -> int:
        if not self.loaded:
            return 0
        return self.info.file_size + (self.kv_bytes + COMPUTE_MARGIN_BYTES) * self.contexts


@dataclass(frozen=True)
class SizingPlan:
    machine: MachineInfo
    budget_bytes: int
    chat: ModelPlan
    embedding: ModelPlan

    @property
    def total_bytes(self) -> int:
        return self.chat.estimated_bytes + self.embedding.estimated_bytes + RUNTIME_OVERHEAD_BYTES

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.budget_bytes

    def explain(self) -> str:
        chat = (
            f"chat {self.chat.estimated_bytes / MiB:.0f} MiB with n_ctx={self.chat.n_ctx} "
            f"x {self.chat.slots} slots"
            if self.chat.loaded
            else "chat on an external server, not loaded"
        )
        return (
            f"models need ~{self.total_bytes / MiB:.0f} MiB "
            f"({chat}, "
            f"embedding {self.embedding.estimated_bytes / MiB:.0f} MiB"
            f" x {self.embedding.contexts} contexts, "
            f"runtime {RUNTIME_OVERHEAD_BYTES / MiB:.0f} MiB); the RAM budget is "
            f"{self.budget_bytes / MiB:.0f} MiB of {self.machine.total_ram / MiB:.0f} MiB total "
            f"(models.ram_budget_fraction)"
        )


def plan_models(
    chat: GgufInfo,
    embedding: GgufInfo,
    *,
    machine: MachineInfo,
    budget_fraction: float,
    n_threads: int = 0,
    chat_ctx: int = 0,
    chat_batch: int = 0,
    embed_batch: int = 0,
    parallel: int = 0,
    embed_contexts: int = 1,
    prompt_tokens: int = 0,
    chat_loaded: bool = True,
) -> SizingPlan:
    """Choose threads, contexts and batches; the plan says whether it fits.

    With `chat_ctx` 0 and `prompt_tokens` (document text + answer of the default
    prompt strategy) given, each slot gets that plus the instructions and question,
    rounded up to 256 cells, instead of up to 4096: the RAM goes to more slots.

    With `chat_loaded` False an external server runs the chat model: its plan takes
    `chat_ctx` and `parallel` as they are and no RAM.
    """
    threads = n_threads or machine.cores
    budget = int(machine.total_ram * budget_fraction)
    if embed_batch and embed_batch > embedding.train_ctx:
        raise SizingError(
            f"models.embed_batch={embed_batch} exceeds the embedding model's context "
            f"{embedding.train_ctx}"
        )
    # An encoder must see a whole sequence in one micro-batch: n_ubatch = n_batch = n_ctx.
    e_ctx = embed_batch or min(embedding.train_ctx, 512)
    embed_plan = ModelPlan("embedding", embedding, e_ctx, e_ctx, threads, contexts=embed_contexts)

    spare = budget - embed_plan.estimated_bytes - RUNTIME_OVERHEAD_BYTES
    if not chat_loaded:
        remote = ModelPlan("chat", chat, chat_ctx, 0, threads, max(1, parallel), loaded=False)
        return SizingPlan(machine, budget, remote, embed_plan)

    def fits(ctx: int, slots: int) -> bool:
        need = chat.file_size + chat.kv_bytes_per_token() * ctx * slots + COMPUTE_MARGIN_BYTES
        return need <= spare

    if chat_ctx and chat_ctx > chat.train_ctx:
        raise SizingError(
            f"models.chat_ctx={chat_ctx} exceeds the chat model's training context {chat.train_ctx}"
        )
    if chat_ctx:
        ctx = chat_ctx
    elif prompt_tokens:
        need = prompt_tokens + PROMPT_OVERHEAD_TOKENS
        ctx = max(MIN_CTX, -(-need // CTX_STEP) * CTX_STEP)
        ctx = min(ctx, chat.train_ctx, AUTO_CTX_CAP)
    else:
        ctx = min(chat.train_ctx, AUTO_CTX_CAP)
    slots = parallel or AUTO_PARALLEL
    if not parallel:  # fewer slots before a shorter context
        while slots > 1 and not fits(ctx, slots):
            slots -= 1
    if not chat_ctx:
        while ctx > MIN_CTX and not fits(ctx, slots):
            ctx //= 2
    batch = min(chat_batch or 256, ctx)
    chat_plan = ModelPlan("chat", chat, ctx, batch, threads, slots)
    return SizingPlan(machine, budget, chat_plan, embed_plan)
