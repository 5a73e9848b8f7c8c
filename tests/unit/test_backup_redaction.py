"""The settings a backup carries, for reading only, hold no secret."""

from __future__ import annotations

import json
from pathlib import Path

from appliance.config.loader import load_settings
from appliance.server.backup import settings_for_backup


def test_the_settings_in_a_backup_hold_no_secret(tmp_path: Path) -> None:
    config = tmp_path / "appliance.toml"
    config.write_text(
        '[generation]\napi_key = "sk-live-123"\n'
        'url = "https://bob:hunter2@llm.example:8000/v1"\n'
        '[storage]\nqdrant_api_key = "qd-456"\n'
    )
    settings = load_settings(config, environ={})
    written = json.loads(settings_for_backup(settings))
    assert written["generation"]["api_key"] == "<redacted>"
    assert written["storage"]["qdrant_api_key"] == "<redacted>"
    assert written["generation"]["url"] == "https://<redacted>@llm.example:8000/v1"
    assert written["retrieval"]["chunk_tokens"] == settings.retrieval.chunk_tokens
    for secret in ["sk-live-123", "hunter2", "qd-456"]:
        assert secret not in json.dumps(written)
