"""The llama.cpp executor of continuous batching: N sequences per `llama_decode`.

`BatchedChat` owns one llama context with `n_seq_max = slots` and carries out
the plan of `scheduler.Scheduler`: which slot a request gets (the one whose KV
cells share the longest prefix with its prompt), which tokens go into each
batch, and when an answer is over. By default each sequence has its own
`n_ctx / slots` KV cells (as llama-server with `--parallel`), and a greedy answer
is token-identical to the same prompt run alone, with or without a cached
prefix. With `unified_kv=True` all sequences share `n_ctx` cells; attention then
spans every sequence's cells, and at temperature 0 answers may differ in rare
near-ties from a lone run (the prefix cache is off then).

Each step decodes one batch (the next token of every decoding sequence plus a
prompt chunk of at most `prefill_chunk` tokens, so streams keep flowing while a
long prompt is read) and samples each sequence with its own sampler chain. A
request is admitted only when a slot is free and `len(prompt) + max_tokens`
cells can be reserved for it, so a decode never runs out of cache (a failed
llama.cpp call would abort the process). Only the engine thread calls this class.
"""

from __future__ import annotations

import codecs
import ctypes
import logging
from pathlib import Path
from typing import Any

from appliance.engine.llama_params import context_sizes
from appliance.engine.scheduler import (
    Finished,
    FinishReason,
    Move,
    Request,
    Scheduler,
    Slot,
)

log = logging.getLogger(__name__)

__all__ = ["BatchedChat", "Finished", "Request"]


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
        prefix_cache: bool = True,
        repetition_stop: bool = True,
    ) -> None:
        import llama_cpp

        from appliance.engine.cpu_backends import ensure_loaded

        ensure_loaded()
        self._ll = llama_cpp
        llama_cpp.llama_backend_init()
        model_params = llama_cpp.llama_model_default_params()
        model_params.use_extra_bufts = extra_buffers
        self._model = llama_cpp.llama_model_load_from_file(str(path).encode(), model_params)
        if not self._model:
            raise RuntimeError(f"{path}: llama.cpp could not load the model")
        ctx_params = llama_cpp.llama_context_default_params()
        for name, value in context_sizes(n_ctx, n_batch, n_threads).items():
            setattr(ctx_params, name, value)
        ctx_params.n_seq_max = slots
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
        # Sliding-window and recurrent models cannot keep an arbitrary prefix of a
        # sequence (llama-server checks the same): they always read the whole prompt.
        # Nor are their sequences moved between slots (their caches copy differently).
        plain = not (
            llama_cpp.llama_model_n_swa(self._model) > 0
            or llama_cpp.llama_model_is_recurrent(self._model)
        )
        prefix_cache = prefix_cache and plain
        self.scheduler = Scheduler(
            slots=slots,
            n_ctx=n_ctx,
            n_batch=n_batch,
            prefill_chunk=prefill_chunk,
            unified_kv=unified_kv,
            prefix_cache=prefix_cache,
            repetition_stop=repetition_stop,
            compact=plain,
        )
        self.n_ctx_seq = self.scheduler.n_ctx_seq
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._samplers: dict[int, Any] = {}
        self._decoders: dict[int, Any] = {}
        self._piece = ctypes.create_string_buffer(256)
        self.last_batch_tokens = 0
        self.last_batch_sequences = 0

    def set_threads(self, n_threads: int) -> None:
        """Compute threads for the next decodes (cheap: llama.cpp reads it per graph)."""
        self._ll.llama_set_n_threads(self._ctx, n_threads, n_threads)

    # ---- capacity ---------------------------------------------------------
    @property
    def active(self) -> int:
        return len(self.scheduler.active)

    def can_admit(self, request: Request) -> bool:
        return self.scheduler.can_admit(request)

    def admit(self, request: Request) -> None:
        ll = self._ll
        chain = ll.llama_sampler_chain_init(ll.llama_sampler_chain_default_params())
        n_vocab = ll.llama_vocab_n_tokens(self._vocab)
        # A token outside the vocabulary would index past llama.cpp's logits: left out.
        bias = [(t, b) for t, b in request.logit_bias if 0 <= t < n_vocab]
        if bias:  # first: the samplers after it read the biased logits
            biases = (ll.llama_logit_bias * len(bias))(
                *(ll.llama_logit_bias(t, b) for t, b in bias)
            )
            ll.llama_sampler_chain_add(
                chain, ll.llama_sampler_init_logit_bias(n_vocab, len(biases), biases)
            )
        if request.temperature <= 0.0:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_greedy())
        else:
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_k(40))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_top_p(0.95, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_min_p(0.05, 1))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_temp(request.temperature))
            ll.llama_sampler_chain_add(chain, ll.llama_sampler_init_dist(request.seed))
        # The slot's state and its sampler come into being together.
        try:
            admission = self.scheduler.admit(request)
        except BaseException:
            ll.llama_sampler_free(chain)
            raise
        seq_id = admission.slot.seq_id
        self._samplers[seq_id] = chain
        self._decoders[seq_id] = codecs.getincrementaldecoder("utf-8")(errors="replace")
        if admission.source is not None:  # the prefix is in another free slot's cells
            ll.llama_memory_seq_cp(self._memory, admission.source, seq_id, -1, -1)
        # Keep the shared prefix of the slot's last prompt; drop the rest of its cells.
        # If the cache cannot cut the sequence there (a recurrent model), start cold.
        keep = admission.keep
        if keep and not ll.llama_memory_seq_rm(self._memory, seq_id, keep, -1):
            keep = 0
        if keep and ll.llama_memory_seq_pos_min(self._memory, seq_id) > 0:
            keep = 0  # a sliding-window cache dropped the start of the prefix
        if keep != admission.keep or not keep:
            ll.llama_memory_seq_rm(self._memory, seq_id, -1, -1)
            self.scheduler.restart(admission.slot)
        request.admitted(admission.slot.reused)

    def _move(self, move: Move) -> None:
        """Carry out a `Move` of the scheduler: the sequence's cells, sampler and decoder.
        llama.cpp copies a whole per-slot cache (all its cells, only that way) between
        slots at the start of the next decode."""
        self._ll.llama_memory_seq_cp(self._memory, move.source, move.target, -1, -1)
        self._samplers[move.target] = self._samplers.pop(move.source)
        self._decoders[move.target] = self._decoders.pop(move.source)

    def _release(self, slot: Slot, *, drop_cells: bool = False) -> None:
        ll = self._ll
        if drop_cells or not self.scheduler.prefix_cache:
            ll.llama_memory_seq_rm(self._memory, slot.seq_id, -1, -1)
            self.scheduler.forget(slot)
        sampler = self._samplers.pop(slot.seq_id, None)
        if sampler is not None:
            ll.llama_sampler_free(sampler)
        self._decoders.pop(slot.seq_id, None)
        self.scheduler.release(slot)

    def cancel_all(self, error: BaseException) -> None:
        for slot in self.scheduler.active:
            request = slot.request
            self._release(slot, drop_cells=True)  # before the client hears: it may count slots
            if request is not None:
                request.emit(error)

    # ---- one decode step ----------------------------------------------------
    def step(self) -> None:
        """Advance every active sequence by one token (or one prefill chunk)."""
        ll = self._ll
        for slot in self.scheduler.active:
            if slot.request is not None and slot.request.cancelled():
                self._release(slot)
        for move in self.scheduler.compaction():  # after the last step's finishes too
            self._move(move)
        if not self.scheduler.active:
            return
        plan = self.scheduler.plan()
        batch = self._batch
        for n, row in enumerate(plan.rows):
            batch.token[n] = row.token
            batch.pos[n] = row.pos
            batch.n_seq_id[n] = 1
            batch.seq_id[n][0] = row.seq_id
            batch.logits[n] = 1 if row.logits else 0
        batch.n_tokens = len(plan.rows)
        self.last_batch_tokens = len(plan.rows)
        self.last_batch_sequences = plan.sequences
        if not plan.rows:
            return
        status = ll.llama_decode(self._ctx, batch)
        if status != 0:
            # Reservation makes this unexpected; fail the streams, keep the server.
            self.cancel_all(RuntimeError(f"llama_decode returned {status}"))
            return
        self.scheduler.decoded(plan)
        for slot in plan.sample:
            request = slot.request
            assert request is not None
            token = ll.llama_sampler_sample(
                self._samplers[slot.seq_id], self._ctx, slot.batch_index
            )
            eog = bool(ll.llama_vocab_is_eog(self._vocab, token))
            reason = self.scheduler.on_token(slot, token, end_of_generation=eog)
            if not eog:
                text = self._decoders[slot.seq_id].decode(self._token_bytes(token))
                if text:
                    request.emit(text)
            if reason is not None:
                self._finish(slot, reason)

    def _token_bytes(self, token: int) -> bytes:
        n = self._ll.llama_token_to_piece(self._vocab, token, self._piece, 256, 0, False)
        return self._piece.raw[: max(0, n)]

    def _finish(self, slot: Slot, reason: FinishReason) -> None:
        request = slot.request
        assert request is not None
        tail = self._decoders[slot.seq_id].decode(b"", final=True)
        finished = self.scheduler.finished(slot, reason)
        self._release(slot)  # before the client hears of it: it may count free slots
        if tail:
            request.emit(tail)
        request.emit(finished)

    def close(self) -> None:
        ll = self._ll
        for slot in self.scheduler.active:
            self._release(slot, drop_cells=True)
        ll.llama_batch_free(self._batch)
        ll.llama_free(self._ctx)
        ll.llama_model_free(self._model)
