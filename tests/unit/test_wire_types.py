"""The wire types are defined once: the core's names for them are the same classes, and
the bounds of an answer's options are the same for /v1/ask and chat completions."""

from __future__ import annotations

from typing import Any, get_args

import msgspec

from appliance.config import sources as config_sources
from appliance.domain import types as domain_types
from appliance.security.keys import Role as KeyRole
from appliance.wire import answers, search, sources
from appliance.wire.ask import AskRequest
from appliance.wire.keys import Role
from appliance.wire.openai import ChatCompletionRequest


def test_the_core_names_the_wire_types() -> None:
    for module in (answers, search):
        for name in ("Citation", "Evidence", "Timings", "DoneEvent", "DocumentFilter", "Hit"):
            if hasattr(module, name):
                assert getattr(domain_types, name) is getattr(module, name)
    assert domain_types.ScanReport is sources.ScanReport
    assert config_sources.SourceSettings is sources.SourceSettings


def test_the_wire_roles_are_the_key_roles() -> None:
    assert set(get_args(Role)) == {role.value for role in KeyRole}


def _bounds(struct: type[msgspec.Struct], field: str) -> dict[str, Any]:
    _, components = msgspec.json.schema_components([struct])
    prop = components[struct.__name__]["properties"][field]["anyOf"][0]
    return {k: v for k, v in prop.items() if k != "description"}


def test_ask_and_chat_options_have_the_same_bounds() -> None:
    for ask_field, chat_field in (
        ("top_k", "top_k"),
        ("max_tokens", "max_tokens"),
        ("temperature", "temperature"),
        ("strategy", "strategy"),
    ):
        ask = _bounds(AskRequest, ask_field)
        assert ask == _bounds(ChatCompletionRequest, chat_field)
        assert len(ask) > 1  # a type and its bounds
