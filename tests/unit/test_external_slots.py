"""How many requests go to an external generation server at once: `generation.parallel`,
or `generation.external_parallel` when it is 0 (the config resolves it, not the generator)."""

from __future__ import annotations

import pytest

from appliance.config.generation import GenerationSettings
from appliance.engine.remote.generator import OpenAIGenerator


@pytest.mark.parametrize(
    ("parallel", "external_parallel", "slots"), [(0, 4, 4), (0, 6, 6), (2, 6, 2)]
)
def test_parallel_zero_means_external_parallel(
    parallel: int, external_parallel: int, slots: int
) -> None:
    g = GenerationSettings(parallel=parallel, external_parallel=external_parallel)
    assert g.external_slots() == slots


def test_the_shipped_default_is_four_requests() -> None:
    assert GenerationSettings().external_slots() == 4


def test_the_generator_refuses_zero_slots() -> None:
    with pytest.raises(ValueError, match="parallel=0"):
        OpenAIGenerator(url="http://127.0.0.1:9/v1", model="m", parallel=0)
