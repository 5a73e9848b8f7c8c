"""The one error model: every refusal the appliance makes is an `ApplianceError`.

It carries the HTTP status, a stable `code` for programs, an optional
`retry_after` (seconds) and the request `field` at fault. `api/errors.py` maps it,
in one place, to an HTTP answer and to a stream's final `error` event.
"""

from __future__ import annotations


class ApplianceError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        status: int | None = None,
        code: str | None = None,
        retry_after: int | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.field = field

    @property
    def status_code(self) -> int:
        """The HTTP status under the name Litestar's logging reads (a refusal is logged
        without a stack trace, as its HTTPExceptions are)."""
        return self.status


class Overloaded(ApplianceError):
    """The queue of a worker is full; retry later."""

    status = 503
    code = "overloaded"

    def __init__(self, what: str, retry_after: int = 2) -> None:
        super().__init__(
            f"{what} is busy: too many requests waiting, retry later", retry_after=retry_after
        )
        self.what = what


class WorkerStopped(ApplianceError):
    """The worker thread is gone (shut down or failed to start)."""

    status = 503
    code = "not_running"


class FieldError(ApplianceError):
    """A request field is valid in shape but not here (an unknown strategy, a question
    too long for the model's context)."""

    status = 400
    code = "invalid_field"

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail, field=field)
