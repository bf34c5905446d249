"""Runs one program's handler in a fresh process, the way Lambda's runtime does, and reports its timings.

    python -S bench/driver.py MODULE HANDLER SPEC_JSON RESULT_JSON

Imports ``MODULE`` (timed: Lambda's init), then calls ``HANDLER`` with each event of the spec (timed: the
invocations). Nothing but ``sys`` and ``time`` is imported before the handler's module, so no program gets
an import for free; ``json`` comes after. Only the harness (``bench/run.py``) starts this file.
"""

import sys
import time

started_wall = time.time()
started = time.perf_counter()
module_name, handler_name, spec_path, result_path = sys.argv[1:5]
module = __import__(module_name)
imported = time.perf_counter()

import json  # noqa: E402 (after the measured import on purpose)
from typing import Any  # noqa: E402


class Context:
    """What a handler reads from Lambda's context object."""

    function_name = "bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


def count_http_requests() -> dict[str, int]:
    """Counts HTTP requests by port from now on (every client here, boto3 and requests too, uses urllib3)."""
    import urllib3.connectionpool

    counts: dict[str, int] = {}
    original = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def urlopen(self: Any, *args: Any, **kwargs: Any) -> Any:
        counts[str(self.port)] = counts.get(str(self.port), 0) + 1
        return original(self, *args, **kwargs)

    urllib3.connectionpool.HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign]
    return counts


def peak_rss_kib() -> int:
    """The process's peak resident set so far (VmHWM; unlike getrusage, it starts at exec, not at fork)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def ok(answer: Any) -> bool:
    if isinstance(answer, dict) and "statusCode" in answer:
        return bool(answer["statusCode"] == 200)
    return isinstance(answer, dict) and "error" not in answer


def main() -> None:
    with open(spec_path, encoding="utf-8") as spec_file:
        spec = json.load(spec_file)
    handler = getattr(module, handler_name)
    context = Context()
    first_started = time.perf_counter()
    first_answer = handler(spec["first_event"], context)
    first_done = time.perf_counter()
    ready_wall = time.time()
    cpu_ms = time.process_time() * 1000  # user + system time since the process started
    result: dict[str, Any] = {
        "started_wall": started_wall,
        "ready_wall": ready_wall,
        "import_ms": (imported - started) * 1000,
        "first_call_ms": (first_done - first_started) * 1000,
        "cpu_ms": cpu_ms,
        "peak_rss_kib": peak_rss_kib(),
        "first_ok": ok(first_answer),
        "first_answer": first_answer if not ok(first_answer) else None,
    }
    events = spec.get("events", [])
    if events:
        counts = count_http_requests() if spec.get("count_requests") else {}
        durations, spans, failures, answers = [], [], 0, []
        cpu_started = time.process_time()
        for event in events:
            begin = time.perf_counter()
            mono_begin = time.monotonic()
            answer = handler(event, context)
            durations.append((time.perf_counter() - begin) * 1000)
            spans.append((mono_begin, time.monotonic()))
            failures += not ok(answer)
            if spec.get("keep_answers"):
                answers.append({k: v for k, v in answer.items() if k in ("checked", "ok", "failed", "mode")})
        result |= {
            "cpu_ms_per_event": (time.process_time() - cpu_started) * 1000 / len(events),
            "durations_ms": durations,
            "spans": spans,
            "failures": failures,
            "answers": answers,
            "http_requests": counts,
        }
    with open(result_path, "w", encoding="utf-8") as out:
        json.dump(result, out, default=str)


main()
