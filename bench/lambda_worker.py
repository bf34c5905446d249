"""One Lambda execution environment for ``bench/cost.py``: imports a handler as Lambda's Python runtime does
(timed: the init phase), then serves invocations one at a time and hands back what each one printed.

    python bench/lambda_worker.py MODULE HANDLER

The harness writes one JSON request a line to stdin and reads one JSON answer a line:

- ``{"event": ..., "context": {...}, "trace_id": "Root=...", "timeout_ms": 25000}`` invokes the handler;
  the answer has its result, wall time, CPU time and the output it wrote (stdout and stderr, and Python
  ``logging`` records formatted as Lambda's runtime does with ``LogFormat: JSON``);
- ``{"advance_seconds": 600}`` makes that much time pass for the environment's caches: Powertools
  Parameters' cached values (the Stripe key, the signing secrets) age by as much, as they would between
  two scheduled runs in one warm environment.

The first answer, before any request, reports the init: its wall time and what the import printed. Only
the harness (``bench/cost.py``) starts this file.
"""

import time

_started = time.perf_counter()

import io  # noqa: E402 (after the clock starts, as Lambda's init duration counts them)
import json  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import traceback  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402
from typing import Any  # noqa: E402


class Capture(io.TextIOBase):
    """Everything the environment writes, as CloudWatch Logs would receive it; drained per invocation."""

    def __init__(self) -> None:
        self._parts: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._parts.append(text)
        return len(text)

    def take(self) -> str:
        text, self._parts = "".join(self._parts), []
        return text


class Context:
    """Lambda's context object, with the deadline of the invocation."""

    def __init__(self, values: dict[str, Any], timeout_ms: int) -> None:
        self.function_name: str = values["function_name"]
        self.function_version: str = "$LATEST"
        self.memory_limit_in_mb: int = int(values["memory_limit_in_mb"])
        self.invoked_function_arn: str = values["invoked_function_arn"]
        self.aws_request_id: str = values["aws_request_id"]
        self.log_group_name: str = values["log_group_name"]
        self.log_stream_name: str = values["log_stream_name"]
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


_request_id = [""]


class LambdaJsonHandler(logging.Handler):
    """Python ``logging`` records as Lambda's runtime writes them with ``LogFormat: JSON``."""

    def __init__(self, stream: Capture) -> None:
        super().__init__()
        self.stream = stream

    def emit(self, record: logging.LogRecord) -> None:
        line = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": "WARN" if record.levelname == "WARNING" else record.levelname,
            "message": record.getMessage(),
            "logger": record.name,
            "requestId": _request_id[0],
        }
        self.stream.write(json.dumps(line) + "\n")


def peak_rss_kib() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def advance(seconds: float) -> int:
    """Age every cached Powertools Parameters value by ``seconds``; the number of values aged."""
    base = sys.modules.get("aws_lambda_powertools.utilities.parameters.base")
    if base is None:
        return 0
    aged = 0
    for provider in base.DEFAULT_PROVIDERS.values():
        store = getattr(provider, "store", None)
        if isinstance(store, dict):
            for key, value in list(store.items()):
                store[key] = value._replace(ttl=value.ttl - timedelta(seconds=seconds))
                aged += 1
    return aged


def main() -> None:
    module_name, handler_name = sys.argv[1:3]
    channel = os.fdopen(os.dup(1), "w", buffering=1)  # answers to the harness
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # nothing else may write to the harness's channel
    capture = Capture()
    sys.stdout = sys.stderr = capture
    root = logging.getLogger()
    root.handlers = [LambdaJsonHandler(capture)]
    root.setLevel(os.environ.get("AWS_LAMBDA_LOG_LEVEL", "INFO"))
    module = __import__(module_name)
    handler = getattr(module, handler_name)
    init_ms = (time.perf_counter() - _started) * 1000
    channel.write(json.dumps({"init_ms": init_ms, "log": capture.take(), "rss_kib": peak_rss_kib()}) + "\n")
    for line in sys.stdin:
        request = json.loads(line)
        if "advance_seconds" in request:
            aged = advance(float(request["advance_seconds"]))
            channel.write(json.dumps({"aged": aged}) + "\n")
            continue
        os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]
        _request_id[0] = request["context"]["aws_request_id"]
        context = Context(request["context"], int(request["timeout_ms"]))
        error = None
        cpu_started, started = time.process_time(), time.perf_counter()
        try:
            answer = handler(request["event"], context)
        except Exception as exc:
            answer = None
            error = f"{type(exc).__name__}: {exc}"
            # What Lambda's runtime logs for an unhandled error (LogFormat: JSON).
            failure = {
                "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "level": "ERROR",
                "message": str(exc),
                "errorType": type(exc).__name__,
                "requestId": _request_id[0],
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            capture.write(json.dumps(failure) + "\n")
        duration_ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.process_time() - cpu_started) * 1000
        reply = {
            "answer": answer,
            "error": error,
            "duration_ms": duration_ms,
            "cpu_ms": cpu_ms,
            "log": capture.take(),
            "rss_kib": peak_rss_kib(),
        }
        channel.write(json.dumps(reply, default=str) + "\n")


main()
