from __future__ import annotations

import re
import subprocess
import sys
import typing
from pathlib import Path

import msgspec
import pytest

from appliance.config import ConfigError, Settings, load_settings
from appliance.config.prompts import default_prompts

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "appliance.toml"


def test_shipped_file_decodes_to_the_defaults() -> None:
    assert load_settings(SHIPPED, {}) == Settings()


def sections() -> list[tuple[str, type]]:
    """(table name, struct type) of every section; for the `[prompts.*]` strategies, the
    default strategy's table (it lists every key; the others list what differs)."""
    hints = typing.get_type_hints(Settings, include_extras=True)
    out = []
    for section in msgspec.structs.fields(Settings):
        section_type = typing.get_args(hints[section.name])[0]
        if typing.get_origin(section_type) is list:  # [[sources]]: a commented example
            out.append((f"# [[{section.name}]]", typing.get_args(section_type)[0]))
        elif typing.get_origin(section_type) is dict:
            out.append((f"{section.name}.{Settings().generation.prompt}",
                        typing.get_args(section_type)[1]))  # fmt: skip
        else:
            out.append((section.name, section_type))
    return out


def test_every_settings_field_is_in_the_shipped_file_with_a_comment() -> None:
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    missing = []
    for name, section_type in sections():
        example = name.startswith("# ")
        header = lines.index(name if example else f"[{name}]")
        following = lines[header + 1 :]
        if example:  # the commented example's lines, without their "# "
            following = [line.removeprefix("# ") for line in following if line.startswith("#")]
        end = next((i for i, line in enumerate(following) if line.startswith("[")), len(following))
        body = following[:end]
        for field in msgspec.structs.fields(section_type):
            idx = next(
                (i for i, line in enumerate(body) if re.match(rf"{field.name}\s*=", line)), None
            )
            if idx is None or idx == 0 or not body[idx - 1].startswith("#"):
                missing.append(f"{name}.{field.name}")
    assert missing == []


def test_every_field_has_a_description() -> None:
    for name, section_type in sections():
        sub = typing.get_type_hints(section_type, include_extras=True)
        for field in msgspec.structs.fields(section_type):
            metas = [m for m in typing.get_args(sub[field.name]) if isinstance(m, msgspec.Meta)]
            assert any(m.description for m in metas), f"{name}.{field.name}"


def test_shipped_strategies_are_the_built_in_ones() -> None:
    shipped = load_settings(SHIPPED, {})
    assert shipped.prompts == default_prompts()
    assert "legacy" in shipped.prompts and shipped.generation.prompt in shipped.prompts


def test_default_prompt_must_name_a_strategy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"generation\.prompt") as info:
        load_settings(SHIPPED, {"APPLIANCE__GENERATION__PROMPT": "nope"})
    assert "overridden by APPLIANCE__GENERATION__PROMPT" in str(info.value)


def test_a_strategy_key_error_names_the_table(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[prompts.mine]\npassages = 0\n[generation]\nprompt = "mine"\n')
    with pytest.raises(ConfigError, match=r"prompts\.mine\.passages"):
        load_settings(path, {})


def test_env_overrides_section_and_key() -> None:
    s = load_settings(
        SHIPPED,
        {"APPLIANCE__SERVER__PORT": "9000", "APPLIANCE__STORAGE__DATA_DIR": "/tmp/x"},
    )
    assert s.server.port == 9000
    assert s.storage.data_dir == "/tmp/x"


@pytest.mark.parametrize("path", [SHIPPED, None])
def test_env_overrides_one_key_of_a_prompt_strategy(path: Path | None, tmp_path: Path) -> None:
    """`APPLIANCE__PROMPTS__BRIEF__COPY_BIAS=0` (the README's advice for untrusted writers)
    changes that key only: brief keeps its other keys, the other strategies stay."""
    if path is None:  # no config file: the shipped strategies are the defaults
        path = tmp_path / "empty.toml"
        path.write_text("")
    before = load_settings(path, {})
    after = load_settings(path, {"APPLIANCE__PROMPTS__BRIEF__COPY_BIAS": "0"})
    assert before.prompts["brief"].copy_bias == 3.0
    assert after.prompts["brief"] == msgspec.structs.replace(before.prompts["brief"], copy_bias=0)
    assert {k: v for k, v in after.prompts.items() if k != "brief"} == {
        k: v for k, v in before.prompts.items() if k != "brief"
    }
    hyphen = load_settings(path, {"APPLIANCE__PROMPTS__TOP3_SYSTEM__PASSAGES": "2"})
    assert hyphen.prompts["top3-system"].passages == 2 and "top3_system" not in hyphen.prompts


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"APPLIANCE__PROMPTS__BRIEFF__COPY_BIAS": "0"}, "no single [prompts.*] table"),
        ({"APPLIANCE__PROMPTS__BRIEF": "{ copy_bias = 0 }"}, "APPLIANCE__PROMPTS__NAME__KEY"),
        ({"APPLIANCE__SERVER__TLS__PORT": "1"}, "expected APPLIANCE__SECTION__KEY"),
        ({"APPLIANCE__PORT": "1"}, "expected APPLIANCE__SECTION__KEY"),
    ],
)
def test_an_env_name_that_names_nothing_is_refused(env: dict[str, str], message: str) -> None:
    """A misspelt strategy would leave the meant one unchanged (the copy bias still on):
    refused, with the names that exist."""
    with pytest.raises(ConfigError, match=re.escape(message)) as info:
        load_settings(SHIPPED, env)
    assert next(iter(env)) in str(info.value)


def test_env_names_a_strategy_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[prompts.Mine]\npassages = 1\n[generation]\nprompt = "Mine"\n')
    mine = load_settings(path, {"APPLIANCE__PROMPTS__MINE__PASSAGES": "3"}).prompts
    assert list(mine) == ["Mine"] and mine["Mine"].passages == 3
    # the file defines its own strategies: `brief` is not one of them
    with pytest.raises(ConfigError, match=r"defined: Mine"):
        load_settings(path, {"APPLIANCE__PROMPTS__BRIEF__COPY_BIAS": "0"})


@pytest.mark.parametrize(
    ("env", "key", "expected"),
    [
        ({"APPLIANCE__PROMPTS__BRIEF__COPY_BIAS": "11"}, "prompts.brief.copy_bias", "<= 10"),
        ({"APPLIANCE__SERVER__PORT": "abc"}, "server.port", "Expected `int`"),
        ({"APPLIANCE__SERVER__PORT": "70000"}, "server.port", "<= 65535"),
        ({"APPLIANCE__SERVER__PROT": "1"}, "server.prot", "unknown key"),
        ({"APPLIANCE__MODELS__RAM_BUDGET_FRACTION": "1.5"}, "models.ram_budget_fraction", "<= 1"),
        ({"APPLIANCE__RETRIEVAL__CHUNK_OVERLAP": "200"}, "retrieval", "chunk_overlap"),
    ],
)
def test_bad_values_name_the_key(env: dict[str, str], key: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(SHIPPED, env)
    message = str(info.value)
    assert f"`{key}`" in message
    assert expected in message
    assert str(SHIPPED) in message
    assert f"overridden by {next(iter(env))}" in message


def test_unknown_key_in_file_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 8080\ncolour = 'red'\n")
    with pytest.raises(ConfigError, match=r"bad.toml.*`server.colour`"):
        load_settings(bad, {})


def test_cli_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\nport = 'eighty'\n")
    for argv in (["config", "check"], ["serve"]):
        result = subprocess.run(
            [sys.executable, "-m", "appliance", "--config", str(bad), *argv],
            capture_output=True,
            text=True,
            cwd=REPO,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert "server.port" in result.stderr
        assert "bad.toml" in result.stderr


def test_cli_config_check_ok() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "appliance", "config", "check"],
        capture_output=True, text=True, cwd=REPO, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_generation_backend_defaults_to_the_local_model() -> None:
    g = load_settings(SHIPPED, {}).generation
    assert (g.backend, g.url, g.api_key, g.model) == ("local", "", "", "")


def test_an_external_backend_takes_url_model_and_key_from_the_environment() -> None:
    s = load_settings(
        SHIPPED,
        {
            "APPLIANCE__GENERATION__BACKEND": "openai",
            "APPLIANCE__GENERATION__URL": "http://10.0.0.5:8000/v1",
            "APPLIANCE__GENERATION__MODEL": "qwen2.5-7b-instruct",
            "APPLIANCE__GENERATION__API_KEY": "sk-local-0123",
            "APPLIANCE__GENERATION__N_CTX": "32768",
        },
    )
    g = s.generation
    assert (g.backend, g.url, g.model, g.api_key, g.n_ctx) == (
        "openai", "http://10.0.0.5:8000/v1", "qwen2.5-7b-instruct", "sk-local-0123", 32768,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"APPLIANCE__GENERATION__MODEL": "m"}, "`generation.url` is required"),
        ({"APPLIANCE__GENERATION__URL": "http://gpu:8000/v1"}, "`generation.model` is required"),
        (
            {"APPLIANCE__GENERATION__URL": "gpu:8000/v1", "APPLIANCE__GENERATION__MODEL": "m"},
            "`generation.url` must be an http:// or https:// URL",
        ),
    ],
)
def test_an_external_backend_names_the_missing_or_bad_key(
    env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(SHIPPED, {"APPLIANCE__GENERATION__BACKEND": "openai", **env})
    assert "key `generation`" in str(info.value) and expected in str(info.value)


def test_an_unknown_generation_backend_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"`generation.backend`: Invalid enum value 'vllm'"):
        load_settings(SHIPPED, {"APPLIANCE__GENERATION__BACKEND": "vllm"})


def test_a_bad_generation_url_is_refused_even_for_the_local_backend() -> None:
    with pytest.raises(ConfigError, match=r"`generation.url` must be an http"):
        load_settings(SHIPPED, {"APPLIANCE__GENERATION__URL": "ftp://gpu/v1"})


@pytest.mark.parametrize("name", ["extract", "generate"])
def test_a_prompt_table_may_not_take_a_request_strategy_name(tmp_path: Path, name: str) -> None:
    path = tmp_path / "appliance.toml"
    path.write_text(SHIPPED.read_text() + f'\n[prompts.{name}]\ncontext = "passages"\n')
    with pytest.raises(ConfigError, match=rf"\[prompts\.{name}\]: the name is a request's"):
        load_settings(path, {})


def test_the_shipped_answer_mode_is_auto() -> None:
    g = load_settings(SHIPPED, {}).generation
    assert g.answer_mode == "auto" and g.generate_from_params == 1_000_000_000
