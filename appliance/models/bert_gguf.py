"""Convert a BERT sentence-embedding model (safetensors + vocab.txt) to GGUF.

Uses the `gguf` library's writer and tensor-name map; no torch. Position and
token-type embeddings stay F32 (llama.cpp aborts on F16 there); matmul weights
may be F16.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

_SKIP = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}
_KEEP_F32 = {"embeddings.position_embeddings.weight", "embeddings.token_type_embeddings.weight"}


class ConversionError(Exception):
    """The source model cannot be converted; the message says which file or tensor."""


def _phantom_space(token: str, control: bool) -> str:
    """WordPiece vocab → llama.cpp's 'phantom space' form."""
    if control:
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


def _special_tokens(model_dir: Path) -> set[str]:
    tokenizer_json = model_dir / "tokenizer.json"
    if tokenizer_json.is_file():
        data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
        return {t["content"] for t in data.get("added_tokens", []) if t.get("special")}
    return {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}


def _pooling_type(model_dir: Path) -> gguf.PoolingType:
    pooling = model_dir / "1_Pooling" / "config.json"
    if pooling.is_file():
        cfg = json.loads(pooling.read_text(encoding="utf-8"))
        if cfg.get("pooling_mode_cls_token"):
            return gguf.PoolingType.CLS
    return gguf.PoolingType.MEAN


def convert_bert(model_dir: Path, out_path: Path, name: str, f16: bool = True) -> Path:
    """Write `out_path` atomically from a sentence-transformers BERT directory."""
    try:
        cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as exc:
        raise ConversionError(f"{model_dir}: cannot read BERT model files: {exc}") from exc
    if cfg.get("model_type") != "bert":
        raise ConversionError(f"{model_dir}/config.json: model_type is not 'bert'")
    try:
        tensors = load_file(str(model_dir / "model.safetensors"))
    except Exception as exc:  # safetensors raises its own error type
        raise ConversionError(f"{model_dir}/model.safetensors: unreadable: {exc}") from exc

    n_layer = int(cfg["num_hidden_layers"])
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layer)
    tmp_path = out_path.with_suffix(out_path.suffix + ".tmp")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(tmp_path), gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.BERT])
    writer.add_name(name)
    writer.add_context_length(int(cfg["max_position_embeddings"]))
    writer.add_embedding_length(int(cfg["hidden_size"]))
    writer.add_feed_forward_length(int(cfg["intermediate_size"]))
    writer.add_block_count(n_layer)
    writer.add_head_count(int(cfg["num_attention_heads"]))
    writer.add_layer_norm_eps(float(cfg["layer_norm_eps"]))
    writer.add_causal_attention(False)
    writer.add_pooling_type(_pooling_type(model_dir))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if f16 else gguf.LlamaFileType.ALL_F32)
    writer.add_token_type_count(int(cfg.get("type_vocab_size", 1)))

    special = _special_tokens(model_dir)
    toktypes = [
        gguf.TokenType.CONTROL if tok in special else gguf.TokenType.NORMAL for tok in vocab
    ]
    tokens = [
        _phantom_space(tok, tt == gguf.TokenType.CONTROL)
        for tok, tt in zip(vocab, toktypes, strict=True)
    ]
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(toktypes)
    special_vocab = gguf.SpecialVocab(model_dir, n_vocab=len(tokens))
    special_vocab.special_token_ids.pop("cls", None)  # llama.cpp uses bos for [CLS]
    special_vocab.add_to_gguf(writer, quiet=True)

    for hf_name in sorted(tensors):
        short = hf_name.removeprefix("bert.")
        if short in _SKIP or short.startswith("cls."):
            continue
        new_name = name_map.get_name(short, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ConversionError(f"{model_dir}: tensor `{hf_name}` has no GGUF name")
        data = tensors[hf_name]
        if f16 and data.ndim == 2 and short not in _KEEP_F32:
            data = data.astype(np.float16)
        else:
            data = data.astype(np.float32)
        writer.add_tensor(new_name, data)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp_path, out_path)
    return out_path
