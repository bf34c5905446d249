"""The monitor's exceptions and the one map from an exception to its answer (``error_answer``), which both
functions' APIs (``http_api.py``) and their other events use. Messages are safe to show a caller and never
hold a secret."""

from typing import Any

from pydantic import ValidationError


class MonitorError(Exception):
    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:  # a more precise code than the class's, e.g. ``invalid_limit``
            self.code = code

    def details(self) -> dict[str, Any]:
        """Fields the error answer carries besides ``error`` (e.g. the check that was not stored)."""
        return {}

    def headers(self) -> dict[str, str]:
        return {}


class InvalidInputError(MonitorError, ValueError):
    """A request, event or answer that is not what it must be; nothing was sent or stored for it."""

    status = 400
    code = "invalid_input"


class InvalidDestinationIdError(InvalidInputError):
    code = "invalid_destination_id"


class InvalidCursorError(InvalidInputError):
    code = "invalid_cursor"


class SignatureError(InvalidInputError):
    """The request is not a verified Stripe delivery."""

    code = "invalid_signature"


class BodyTooLargeError(MonitorError):
    status = 413
    code = "body_too_large"


class RouteNotFoundError(MonitorError):
    status = 404
    code = "not_found"


class UnknownDestinationError(MonitorError):
    """A destination the monitor has never checked."""

    status = 404
    code = "unknown_destination"


class MethodNotAllowedError(MonitorError):
    status = 405
    code = "method_not_allowed"

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class ConfigError(MonitorError):
    """The deployment is misconfigured (missing setting, unusable secret)."""

    code = "config_error"


class NotConfiguredError(MonitorError):
    """A feature this deployment has not set up (e.g. no webhook signing secret)."""

    status = 503
    code = "not_configured"


class StorageError(MonitorError):
    """A check was made but could not be stored; it is logged in full, and answered, so it is not lost."""

    code = "storage_error"

    def __init__(self, check: dict[str, Any]) -> None:
        super().__init__("the check was made but could not be stored")
        self.check = check

    def details(self) -> dict[str, Any]:
        return {"check": self.check}


def validation_message(exc: ValidationError, *, every: bool = False, upper: bool = False) -> str:
    """``where: what`` of a pydantic error: the first one and how many more, or ``every`` one; ``upper``
    names the fields as their environment variables."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(part) for part in error["loc"]) or "body"
        problems.append(f"{where.upper() if upper else where}: {error['msg']}")
    problems = problems or ["invalid"]
    if every:
        return "; ".join(problems)
    return problems[0] + (f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")


def error_answer(exc: Exception) -> tuple[int, dict[str, Any]] | None:
    """The answer to an error: its HTTP status and body ``{"error": {"code", "message"}, ...}``; None for an
    exception that is not the caller's to see (a bug: the caller answers 500 and logs it)."""
    if isinstance(exc, MonitorError):
        return exc.status, error_body(exc.code, str(exc), **exc.details())
    if isinstance(exc, ValidationError):
        return 400, error_body(InvalidInputError.code, validation_message(exc))
    return None


def invalid_event(exc: InvalidInputError | ValidationError) -> dict[str, Any]:
    """The answer to a direct invoke or scheduled event that is not valid (no HTTP status to carry)."""
    message = validation_message(exc) if isinstance(exc, ValidationError) else str(exc)
    return error_body(InvalidInputError.code, message)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}, **extra}
