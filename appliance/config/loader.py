"""Load `Settings` from a TOML file plus `APPLIANCE__SECTION__KEY` env overrides (a prompt
strategy's key: `APPLIANCE__PROMPTS__NAME__KEY`).

Every failure raises `ConfigError` naming the file, the key and what was expected.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from appliance.config.prompts import PromptStrategy, default_prompts
from appliance.config.schema import Settings

ENV_PREFIX = "APPLIANCE__"
DEFAULT_CONFIG = Path("configs/appliance.toml")
# What packaging/install.sh writes: used when there is no ./configs/appliance.toml, so
# `appliance tui` or `appliance keys list` on an installed server needs no --config.
INSTALLED_CONFIG = Path("/etc/appliance/appliance.toml")


class ConfigError(Exception):
    """A configuration problem; the message names the source and the key."""


def _parse_env_value(raw: str) -> Any:
    """Read an env value as a TOML literal (number, bool, array); else keep the string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


# Sections that are tables of named tables: their keys take a third part, the name
# (`APPLIANCE__PROMPTS__BRIEF__COPY_BIAS`).
NAMED_TABLES = {"prompts": default_prompts}


def _env_parts(name: str) -> list[str]:
    parts = name[len(ENV_PREFIX) :].lower().split("__")
    named = parts[0] in NAMED_TABLES
    if not all(parts) or len(parts) != (3 if named else 2):
        raise ConfigError(
            f"environment variable {name}: expected APPLIANCE__SECTION__KEY "
            f"(a prompt strategy's key: APPLIANCE__PROMPTS__NAME__KEY)"
        )
    return parts


def _named_table(data: dict[str, Any], name: str, parts: list[str]) -> dict[str, Any]:
    """The existing table a variable names (`_` standing for `-` where only that name
    exists): the file's, or the shipped ones when the file defines none. A name of none
    is an error, so that a misspelt strategy does not leave the meant one unchanged."""
    section, table = parts[0], parts[1]
    if section not in data:  # the shipped tables, so that one key changes only that key
        data[section] = msgspec.to_builtins(NAMED_TABLES[section]())
    tables = data[section]
    if not isinstance(tables, dict):
        raise ConfigError(f"environment variable {name}: `{section}` is not a section")
    found = [t for t in tables if t.lower() in (table, table.replace("_", "-"))]
    exact = [t for t in found if t.lower() == table]
    if len(exact or found) != 1:
        known = ", ".join(sorted(tables)) or "none"
        raise ConfigError(
            f"environment variable {name}: no single [{section}.*] table is named {table!r} "
            f"(defined: {known})"
        )
    target = tables[(exact or found)[0]]
    if not isinstance(target, dict):
        raise ConfigError(f"environment variable {name}: `{section}.{table}` is not a table")
    return target


def _overlay_env(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    applied: list[str] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = _env_parts(name)
        if len(parts) == 3:
            target = _named_table(data, name, parts)
        else:
            target = data.setdefault(parts[0], {})
            if not isinstance(target, dict):
                raise ConfigError(f"environment variable {name}: `{parts[0]}` is not a section")
        target[parts[-1]] = _parse_env_value(raw)
        applied.append(name)
    return applied


_PATH_RE = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_UNKNOWN_RE = re.compile(r"unknown field `(?P<field>[^`]+)`")


def _describe(err: msgspec.ValidationError) -> tuple[str, str]:
    """Turn msgspec's message into (dotted key, what was expected)."""
    message = str(err)
    path = ""
    if match := _PATH_RE.search(message):
        path = match.group("path")
        message = message[: match.start()]
    if match := _UNKNOWN_RE.search(message):
        path = f"{path}.{match.group('field')}" if path else match.group("field")
        message = "unknown key (not part of the settings schema)"
    path = re.sub(r"\[(\d+)\]", r".\1", path)
    return path or "<root>", message


def _name_the_table(key: str, data: dict[str, Any]) -> str:
    """msgspec reports a key of a `[prompts.NAME]` table as `prompts[...]`: find NAME."""
    if not key.startswith("prompts[...]"):
        return key
    tables = data.get("prompts")
    if isinstance(tables, dict):
        for name, table in tables.items():
            try:
                msgspec.convert(table, PromptStrategy)
            except msgspec.ValidationError:
                return key.replace("[...]", f".{name}", 1)
    return key


def _origin(source: str, key: str, expected: str, env_names: list[str]) -> str:
    """`source`, with the variables that set the failing key: the key's own, or those
    setting keys of the section it names (a section's or the root's own check names
    its keys in backticks)."""
    if key == "<root>":  # the root's own check: `generation.prompt` ...
        keys = re.findall(r"`([a-z_]+(?:\.[a-z0-9_-]+)+)`", expected)
    else:  # a key, or a section whose own check names its keys: `chunk_overlap` ...
        keys = [key, *(f"{key}.{k}" for k in re.findall(r"`([a-z0-9_]+)`", expected))]
    own, inside = [], []
    for k in keys:
        depth = 3 if k.split(".")[0] in NAMED_TABLES else 2
        env_name = ENV_PREFIX + "__".join(k.upper().replace("-", "_").split(".")[:depth])
        own += [n for n in env_names if n == env_name]
        inside += [n for n in env_names if n.startswith(f"{env_name}__")]
    if own:
        return f"{source} (overridden by {', '.join(dict.fromkeys(own))})"
    if inside:
        return f"{source} (variables set in that section: {', '.join(dict.fromkeys(inside))})"
    return source


def load_settings(
    path: Path | str | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Decode the config file (default `configs/appliance.toml`, optional) plus env overrides."""
    environ = os.environ if environ is None else environ
    explicit = path is not None
    if path is not None:
        config_path = Path(path)
    elif not DEFAULT_CONFIG.is_file() and INSTALLED_CONFIG.is_file():
        config_path = INSTALLED_CONFIG
    else:
        config_path = DEFAULT_CONFIG
    data: dict[str, Any] = {}
    if config_path.is_file():
        try:
            data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{config_path}: not valid TOML: {exc}") from exc
    elif explicit:
        raise ConfigError(f"{config_path}: config file not found")
    source = str(config_path) if config_path.is_file() else "<defaults>"
    env_names = _overlay_env(data, environ)
    try:
        return msgspec.convert(data, Settings)
    except msgspec.ValidationError as exc:
        key, expected = _describe(exc)
        key = _name_the_table(key, data)
        raise ConfigError(
            f"{_origin(source, key, expected, env_names)}: key `{key}`: {expected}"
        ) from exc
