"""``make cost``: a function's execution environment, a process running ``bench/lambda_worker.py`` as
Lambda's runtime runs the handler, and the log lines Lambda itself writes for each invocation."""

import json
import math
import secrets
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.cost_reference import FunctionSpec
from tools.standins.aws import REGION

WORKER = Path(__file__).resolve().parent / "lambda_worker.py"
ACCOUNT = "123456789012"


class Worker:
    """One execution environment of a function: a process running ``bench/lambda_worker.py``."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str]) -> None:
        self.spec = spec
        self.process = subprocess.Popen(
            [sys.executable, str(WORKER), spec.module, spec.handler],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=spec.code_dir, text=True,
        )  # fmt: skip
        ready = self._read()
        self.init_ms = float(ready["init_ms"])
        self.init_log = str(ready["log"])
        self.invoked = False

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.spec.logical_id}'s worker died ({self.process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def _write(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()

    def advance(self, seconds: float) -> int:
        self._write({"advance_seconds": seconds})
        return int(self._read()["aged"])

    def invoke(self, event: dict[str, Any], request_id: str, trace_id: str) -> dict[str, Any]:
        spec = self.spec
        context = {
            "function_name": spec.name,
            "memory_limit_in_mb": spec.memory_mb,
            "invoked_function_arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{spec.name}",
            "aws_request_id": request_id,
            "log_group_name": f"/aws/lambda/{spec.name}",
            "log_stream_name": f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}",
        }
        self._write(
            {"event": event, "context": context, "trace_id": trace_id, "timeout_ms": spec.timeout_s * 1000}
        )
        return self._read()

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def trace_header() -> tuple[str, str]:
    """A new X-Ray trace header, and its span id."""
    root = f"1-{int(time.time()):08x}-{secrets.token_hex(12)}"
    parent = secrets.token_hex(8)
    return f"Root={root};Parent={parent};Sampled=1", parent


def platform_lines(spec: FunctionSpec, request_id: str, trace: str, span: str, reply: dict[str, Any],
                   init_ms: float | None) -> str:  # fmt: skip
    """Lambda's own log lines for one invocation with ``LogFormat: JSON`` (and active tracing):
    ``platform.initStart`` at a cold start, ``platform.start`` and ``platform.report``."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    tracing = {"spanId": span, "type": "X-Amzn-Trace-Id", "value": trace} if spec.tracing else None
    lines = []
    if init_ms is not None:
        init = {
            "initializationType": "on-demand",
            "phase": "init",
            "runtimeVersion": "python:3.13.v48",
            "runtimeVersionArn": f"arn:aws:lambda:{REGION}::runtime:{secrets.token_hex(32)}",
            "functionName": spec.name,
            "functionVersion": "$LATEST",
        }
        lines.append({"time": now, "type": "platform.initStart", "record": init})
    start: dict[str, Any] = {"requestId": request_id, "version": "$LATEST"}
    if tracing:
        start["tracing"] = tracing
    lines.append({"time": now, "type": "platform.start", "record": start})
    duration = float(reply["duration_ms"])
    metrics: dict[str, Any] = {
        "durationMs": round(duration, 3),
        "billedDurationMs": math.ceil(duration) + (math.ceil(init_ms) if init_ms is not None else 0),
        "memorySizeMB": spec.memory_mb,
        "maxMemoryUsedMB": int(reply["rss_kib"]) // 1024,
    }
    if init_ms is not None:
        metrics["initDurationMs"] = round(init_ms, 3)
    report: dict[str, Any] = {"requestId": request_id, "metrics": metrics}
    if tracing:
        report["tracing"] = tracing
    report["status"] = "success" if reply["error"] is None else "error"
    lines.append({"time": now, "type": "platform.report", "record": report})
    return "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
