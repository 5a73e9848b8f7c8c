"""Configuration: frozen msgspec Structs decoded from TOML with env overrides."""

from appliance.config.loader import ConfigError, load_settings
from appliance.config.schema import Settings

__all__ = ["ConfigError", "Settings", "load_settings"]
