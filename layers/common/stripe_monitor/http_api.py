"""The HTTP side of both functions' APIs: a resolver for a function's routes, with the one registration
that turns every exception into an answer (``errors.error_answer``), and the answers to paths and methods
no route takes. Imported at the first API request only: scheduled runs never pay for the event handler.
"""

import json
import re
from collections.abc import Mapping

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter
from pydantic import BaseModel, ValidationError

from stripe_monitor.errors import (
    InvalidInputError,
    MethodNotAllowedError,
    MonitorError,
    RouteNotFoundError,
    error_answer,
    error_body,
    validation_message,
)
from stripe_monitor.model.untrusted import loads_json
from stripe_monitor.observability import logger

# A route's path -> its methods, for the 404 and 405 answers; ``<name>`` is a path parameter.
RouteTable = Mapping[str, tuple[str, ...]]
_PARAMETER = re.compile(r"<\w+>")


def json_response(status: int, body: object, headers: dict[str, str] | None = None) -> Response[str]:
    return Response(
        status_code=status, content_type="application/json", body=json.dumps(body), headers=headers
    )


def parse_body[M: BaseModel](model: type[M], raw: str, *, expected: str) -> M:
    """The JSON body as ``model``, or a 400 ``invalid_body`` that says what was ``expected``."""
    try:
        document = loads_json(raw or "{}")
    except ValueError:
        raise InvalidInputError(f"expected {expected}: the body is not JSON", code="invalid_body") from None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        message = f"expected {expected}: {validation_message(exc)}"
        raise InvalidInputError(message, code="invalid_body") from None


def create_resolver(
    router: APIGatewayRouter, routes: RouteTable, *, invalid_parameter: MonitorError
) -> APIGatewayRestResolver:
    """A resolver with ``router``'s routes and the error map. A known path and method that no route took
    has a path parameter no route accepts: ``invalid_parameter`` is the answer."""
    app = APIGatewayRestResolver()
    app.include_router(router)
    patterns = {re.compile(_PARAMETER.sub("[^/]+", path)): methods for path, methods in routes.items()}

    def answer_error(exc: Exception) -> Response[str]:
        answer = error_answer(exc)
        if answer is None:  # a bug: logged with its traceback, answered without a detail of it
            request_id = (app.current_event.raw_event.get("requestContext") or {}).get("requestId")
            logger.exception("unexpected error", request_id=request_id)
            answer = 500, error_body("internal_error", "unexpected error", request_id=request_id)
        status, body = answer
        if status >= 500:
            logger.warning("request failed", status=status, error=body["error"])
        headers = exc.headers() if isinstance(exc, MonitorError) else None
        return json_response(status, body, headers)

    app.exception_handler(Exception)(answer_error)

    @app.not_found
    def no_route(_: Exception) -> Response[str]:
        path, method = app.current_event.path, app.current_event.http_method
        methods = next((m for pattern, m in patterns.items() if pattern.fullmatch(path)), None)
        # Answered here: Powertools does not pass what a not-found handler raises to the error map.
        if methods is None:
            return answer_error(RouteNotFoundError(f"no route for {method} {path}"))
        if method not in methods:
            return answer_error(MethodNotAllowedError(f"{method} is not allowed on {path}", methods))
        return answer_error(invalid_parameter)

    return app
