"""Lambda execution environments as worker processes, for the load tests.

Lambda serves one invocation at a time per execution environment and scales out by adding environments; it
never runs two invocations in one Python process. The handler relies on that: Powertools' API resolver keeps
the current request on the class (``BaseRouter.current_event``), so threads sharing one process would read
each other's requests. Each worker process here is one environment: it imports the handler once (its cold
start), writes its logs to its own file, and serves invocations one at a time.

Deliberately light: a spawned worker imports this module (and tests/support.py), and nothing of the test
suite's fixtures.
"""

import contextlib
import multiprocessing
import os
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tests.support import FakeLambdaContext


def _start(environment: dict[str, str], log_dir: str) -> None:
    """Pool initializer: route this process's stdout/stderr to its own log file, then cold-start."""
    sys.stdout.flush()
    sys.stderr.flush()
    log = os.open(Path(log_dir) / f"environment-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    os.environ.clear()
    os.environ.update(environment)
    import app  # noqa: F401 - the cold start


def invoke(event: dict[str, Any], remaining_ms: int = 20_000) -> dict[str, Any]:
    """One invocation; an exception that would reach the Lambda runtime is returned as ``{"raised": ...}``."""
    import app

    try:
        answer: dict[str, Any] = app.lambda_handler(
            event, FakeLambdaContext(remaining_ms=remaining_ms, aws_request_id=f"load-{os.getpid()}")
        )
    except Exception as exc:
        answer = {"raised": f"{type(exc).__name__}: {exc}"}
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    return answer


@contextlib.contextmanager
def execution_environments(
    count: int, environment: dict[str, str], log_dir: Path
) -> Iterator[ProcessPoolExecutor]:
    """``count`` environments, each its own process. They are forked from a fork server that has imported
    the handler's modules once (never from the test process, whose server threads a fork would copy
    mid-step), so that starting sixteen of them costs one import, not sixteen."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["app"])
    with ProcessPoolExecutor(
        max_workers=count,
        mp_context=context,
        initializer=_start,
        initargs=(environment, str(log_dir)),
    ) as pool:
        yield pool


def environment_logs(log_dir: Path) -> str:
    return "".join(path.read_text(errors="replace") for path in sorted(log_dir.glob("environment-*.log")))
