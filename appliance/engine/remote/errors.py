"""What a request to the external generation server raises when the server fails it."""

from __future__ import annotations

from appliance.domain.errors import ApplianceError


class GenerationServerError(ApplianceError):
    """The external generation server failed a request (refused, HTTP error, broken
    stream); the message names its URL."""

    status = 502
    code = "generation_server_error"


class GenerationServerDown(ApplianceError):
    """The external generation server is known not to answer: refused at once."""

    status = 503
    code = "generation_unavailable"
