"""`ApplianceClient.responds`: restore's check that no server runs at the URL."""

from __future__ import annotations

import httpx

from appliance.client import ApplianceClient


async def test_any_http_answer_is_a_server() -> None:
    for status in (200, 404, 503):
        answer = httpx.MockTransport(lambda request, s=status: httpx.Response(s))
        async with ApplianceClient("http://appliance", transport=answer) as client:
            assert await client.responds(), status


async def test_nothing_listening_is_no_server() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with ApplianceClient("http://appliance", transport=httpx.MockTransport(refuse)) as client:
        assert not await client.responds()
