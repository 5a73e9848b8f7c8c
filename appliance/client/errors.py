"""What a failed request becomes: an `ApiError` whose message is plain words for a
person (the server is not reachable, the key was refused, or the server's own reason)."""

from __future__ import annotations

import httpx

KEY_HINT = (
    "pass --key, set APPLIANCE_API_KEY, or run on the server itself, where "
    "<data_dir>/secrets/admin.key is read"
)


class ApiError(Exception):
    """The appliance refused a request (`status` is its HTTP status) or could not be
    reached (`status` is None). `str()` is a sentence for the user."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    @property
    def unreachable(self) -> bool:
        return self.status is None

    @property
    def key_refused(self) -> bool:
        return self.status == 401


def _detail(resp: httpx.Response) -> tuple[str, str | None]:
    try:
        body = resp.json()
    except ValueError:
        return resp.text.strip() or resp.reason_phrase, None
    if isinstance(body, dict):
        return str(body.get("detail", resp.text)), body.get("code")
    return resp.text, None


def refusal(resp: httpx.Response, url: str) -> ApiError:
    """The ApiError for a non-2xx answer, with what to do for 401/403."""
    detail, code = _detail(resp)
    if resp.status_code == 401:
        message = f"the appliance at {url} refused the API key (HTTP 401: {detail}): {KEY_HINT}"
    elif resp.status_code == 403:
        message = f"this API key may not do that (HTTP 403: {detail})"
    else:
        message = f"{resp.status_code}: {detail}"
    return ApiError(message, resp.status_code, code)


def unreachable(url: str, exc: httpx.TransportError) -> ApiError:
    why = {
        httpx.ConnectError: "nothing answers there (is the appliance running?)",
        httpx.ConnectTimeout: "no answer in time (a firewall, or the wrong address?)",
        httpx.ReadTimeout: "it stopped answering (busy, or restarting?)",
    }.get(type(exc), str(exc) or type(exc).__name__)
    return ApiError(f"cannot reach the appliance at {url}: {why}")
