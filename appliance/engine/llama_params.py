"""Validate llama.cpp parameters in Python: a failed assert inside llama.cpp aborts the process."""

from __future__ import annotations

from pathlib import Path


class EngineConfigError(ValueError):
    """A parameter llama.cpp would abort on; the message names it."""


def check_common(path: Path, n_ctx: int, n_batch: int, n_threads: int) -> None:
    if not path.is_file():
        raise EngineConfigError(f"model file not found: {path}")
    if n_ctx < 8:
        raise EngineConfigError(f"n_ctx={n_ctx} is too small (at least 8)")
    if not 1 <= n_batch <= n_ctx:
        raise EngineConfigError(f"n_batch={n_batch} must be between 1 and n_ctx={n_ctx}")
    if n_threads < 1:
        raise EngineConfigError(f"n_threads={n_threads} must be at least 1")


def check_encoder(n_ctx: int, n_batch: int, n_ubatch: int, train_ctx: int) -> None:
    """An encoder (non-causal) model must see every sequence in one micro-batch."""
    if n_ubatch != n_batch:
        raise EngineConfigError(
            f"embedding n_ubatch={n_ubatch} must equal n_batch={n_batch} for an encoder"
        )
    if n_ctx > train_ctx:
        raise EngineConfigError(
            f"embedding n_ctx={n_ctx} exceeds the model's position table ({train_ctx})"
        )


def context_sizes(n_ctx: int, n_batch: int, n_threads: int) -> dict[str, int]:
    """The llama.cpp context parameters every model of the appliance gets the same way:
    the micro-batch is the whole batch (an encoder must see each sequence in one), and
    prompt batches decode on as many threads as single tokens."""
    return {
        "n_ctx": n_ctx, "n_batch": n_batch, "n_ubatch": n_batch,
        "n_threads": n_threads, "n_threads_batch": n_threads,
    }  # fmt: skip
