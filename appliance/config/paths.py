"""Where things live under the data dir (pure: shared by the server, CLI and console)."""

from __future__ import annotations

from pathlib import Path

from appliance.config.schema import Settings


def data_dir(settings: Settings) -> Path:
    return Path(settings.storage.data_dir).expanduser().resolve()


def models_dir(settings: Settings) -> Path:
    """models.models_dir, else <data_dir>/models: the added models and the registry."""
    configured = settings.models.models_dir
    return Path(configured).expanduser().resolve() if configured else data_dir(settings) / "models"


def secrets_dir(settings: Settings) -> Path:
    return data_dir(settings) / "secrets"


def admin_key_file(settings: Settings) -> Path:
    """The bootstrap admin key, written on first start for the CLI and console here."""
    return secrets_dir(settings) / "admin.key"
