"""Continuous batching over llama.cpp's low-level API: N sequences per `llama_decode`.

`BatchedChat` owns one llama context with `n_seq_max = slots`. By default each
sequence has its own `n_ctx / slots` KV cells (as llama-server with `--parallel`),
and a greedy answer is token-identical to the same prompt run alone. With
`unified_kv=True` all sequences share `n_ctx` cells; attention then spans every
sequence's cells, and at temperature 0 answers may differ in rare near-ties from
a lone run.
Every `step()` builds one batch
holding the next token of every decoding sequence plus a chunk of at most
`prefill_chunk` prompt tokens (so running streams keep flowing while a long
prompt is read), decodes it once, and samples each sequence with its own
sampler chain. A new request joins at the next step; a finished or cancelled
one frees its slot and its KV cells at once.

A request is admitted only when a slot is free and `len(prompt) + max_tokens`
cells can be reserved for it in the shared cache, so a decode can never run out
of cache (a failed llama.cpp call would abort the process). Only the engine
thread calls into this class.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class Request:
    """What the engine needs to run one generation; `emit` sends text/END/errors back."""

    prompt_tokens: list[int]
    max_tokens: int
    temperature: float
    emit: Callable[[object], None]
    cancelled: Callable[[], bool]
    seed: int = 0


@dataclass
class _Slot:
    seq_id: int
    request: Request
    sampler: Any
    decoder: Any
    prefilled: int = 0  # prompt tokens already in the KV cache
    produced: int = 0
    next_token: int | None = None  # sampled, to be fed at the next step
    batch_index: int = -1  # row of this sequence's logits in the current batch
    reserved: int = 0
    arrival: int = 0  # admission order: prompts are read first come, first served

    @property
    def n_past(self) -> int:
        return self.prefilled + self.produced


END = object()


class BatchedChat:
    """A chat model context serving up to `slots` sequences at once."""

    def __init__(
        self,
        path: Path,
        *,
        slots: int,
        n_ctx: int,
        n_batch: int,
        n_threads: int,
        extra_buffers: bool = False,
        prefill_chunk: int | None = None,
        unified_kv: bool = False,
    ) -> None:
        import llama_cpp

        self._ll = llama_cpp
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        model_params.use_extra_bufts = extra_buffers
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
        if not self._model:
            raise RuntimeError(f"{path}: llama.cpp could not load the model")
        ctx_params = llama_cpp.llama_context_default_params()
        ctx_params.n_ctx = n_ctx
        ctx_params.n_batch = n_batch
        ctx_params.n_ubatch = n_batch
        ctx_params.n_seq_max = slots
        ctx_params.n_threads = n_threads
        ctx_params.n_threads_batch = n_threads
        ctx_params.kv_unified = unified_kv
        ctx_params.no_perf = True
        # Same attention kernels as llama-cpp-python's `Llama` (flash attention off),
        # so answers match the library's; measured here: same speed with it on or off.
        ctx_params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        self._ctx = llama_cpp.llama_init_from_model(self._model, ctx_params)
        if not self._ctx:
            llama_cpp.llama_model_free(self._model)
            raise RuntimeError(f"{path}: llama.cpp could not create a context")
        self._vocab = llama_cpp.llama_model_get_vocab(self._model)
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self.slots = slots
        self.n_ctx = n_ctx
        self.n_ctx_seq = n_ctx // slots
        self.n_batch = n_batch
        self.prefill_chunk = min(prefill_chunk or n_batch, n_batch)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._free_seq = list(range(slots))[::-1]
        self._arrivals = 0
        self._active: list[_Slot] = []
        self._reserved = 0
        self._piece = ctypes.create_string_buffer(256)
        self.last_batch_tokens = 0
        self.last_batch_sequences = 0

    # ---- capacity ---------------------------------------------------------
    @property
    def active(self) -> int:
        return len(self._active)

    def can_admit(self, request: Request) -> bool:
        need = len(request.prompt_tokens) + request.max_tokens
        return (
            bool(self._free_seq) and need <= self.n_ctx_seq and self._reserved + need <= self.n_ctx
        )

    def admit(self, request: Request) -> None:
        ll = self._ll
        seq_id = self._free_seq.pop()
        ll.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        if request.temperature <= 0.0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
        else:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(40))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(0.95, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(0.05, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(request.temperature))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(request.seed))
        reserved = len(request.prompt_tokens) + request.max_tokens
        self._reserved += reserved
        self._arrivals += 1
        self._active.append(
            _Slot(
                arrival=self._arrivals,
                seq_id=seq_id,
                request=request,
                sampler=chain,
                decoder=codecs.getincrementaldecoder("utf-8")(errors="replace"),
                reserved=reserved,
            )
        )

    def _release(self, slot: _Slot) -> None:
        ll = self._ll
        ll.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
        ll.llama_sampler_free(slot.sampler)
        self._reserved -= slot.reserved
        self._free_seq.append(slot.seq_id)
        self._active.remove(slot)

    def cancel_all(self, error: BaseException) -> None:
        for slot in list(self._active):
            self._release(slot)  # before the client hears of it: it may count free slots
            slot.request.emit(error)

    # ---- one decode step ----------------------------------------------------
    def step(self) -> None:
        """Advance every active sequence by one token (or one prefill chunk)."""
        ll = self._ll
        for slot in list(self._active):
            if slot.request.cancelled():
                self._release(slot)
        if not self._active:
            return
        batch = self._batch
        n = 0

        def add(token: int, pos: int, seq_id: int, logits: bool) -> None:
            nonlocal n
            batch.token[n] = token
            batch.pos[n] = pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = seq_id
            batch.logits[n] = 1 if logits else 0
            n += 1

        # Decoding sequences first: one token each, so streams never stall. Rows go in
        # seq-id order: llama.cpp splits a batch whose sequences come unordered into
        # several micro-batches (measured: 90 vs 43 ms per 8-stream step).
        self._active.sort(key=lambda s: s.seq_id)
        for slot in self._active:
            slot.batch_index = -1
            if slot.next_token is not None:
                slot.batch_index = n
                add(slot.next_token, slot.n_past - 1, slot.seq_id, True)
        # Then prompt chunks in arrival order, within the batch and chunk budget.
        budget = min(self.n_batch - n, self.prefill_chunk)
        for slot in sorted(self._active, key=lambda s: s.arrival):
            if budget <= 0:
                break
            prompt = slot.request.prompt_tokens
            if slot.next_token is not None or slot.prefilled >= len(prompt):
                continue
            take = min(budget, len(prompt) - slot.prefilled)
            for i in range(slot.prefilled, slot.prefilled + take):
                last = i == len(prompt) - 1
                if last:
                    slot.batch_index = n
                add(prompt[i], i, slot.seq_id, last)
            slot.prefilled += take
            budget -= take
        batch.n_tokens = n
        self.last_batch_tokens = n
        self.last_batch_sequences = sum(1 for s in self._active if s.batch_index >= 0)
        if n == 0:
            return
        status = ll.llama_decode(self._ctx, batch)
        if status != 0:
            # Reservation makes this unexpected; fail the streams, keep the server.
            self.cancel_all(RuntimeError(f"llama_decode returned {status}"))
            return
        for slot in list(self._active):
            if slot.batch_index < 0:
                continue
            token = ll.llama_sampler_sample(slot.sampler, self._ctx, slot.batch_index)
            if ll.llama_vocab_is_eog(self._vocab, token):
                self._finish(slot)
                continue
            # The sampled token counts once it is fed back at the next step.
            slot.produced += 1
            slot.next_token = token
            text = slot.decoder.decode(self._token_bytes(token))
            if text:
                slot.request.emit(text)
            if slot.produced >= slot.request.max_tokens:
                self._finish(slot)

    def _token_bytes(self, token: int) -> bytes:
        n = self._ll.llama_token_to_piece(self._vocab, token, self._piece, 256, 0, False)
        return self._piece.raw[: max(0, n)]

    def _finish(self, slot: _Slot) -> None:
        tail = slot.decoder.decode(b"", final=True)
        self._release(slot)  # before the client hears of it: it may count free slots
        if tail:
            slot.request.emit(tail)
        slot.request.emit(END)

    def close(self) -> None:
        ll = self._ll
        for slot in list(self._active):
            self._release(slot)
        ll.llama_batch_free(self._batch)
        ll.llama_free(self._ctx)
        ll.llama_model_free(self._model)
