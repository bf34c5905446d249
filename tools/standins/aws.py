"""moto's server on 127.0.0.1 as the local stand-in for DynamoDB and Secrets Manager.

The code under test finds it through the standard ``AWS_ENDPOINT_URL``; nothing in the application knows.
"""

import errno
import functools
import logging
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Self

import boto3
from moto.server import ThreadedMotoServer

from tools.standins.service import Service
from tools.standins.template import load_template, results_table_create_args, results_table_ttl_attribute

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
# DynamoDB applies each request to an item atomically, and answers with the item as that request left it
# (ALL_OLD / ALL_NEW). moto's server threads do not: two updates of one new item both create it and one is
# lost, two answers can show the same old value. The monitor relies on both (a check joining its event's
# item while a receipt records an arrival on it; a delivery counted once), so in this process moto takes
# DynamoDB requests one at a time.
_DYNAMODB_REQUESTS = threading.RLock()
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def ensure_port_free(port: int) -> None:
    """OSError(EADDRINUSE) when something listens on ``port`` of 127.0.0.1 already."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind: TIME_WAIT is fine
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise OSError(errno.EADDRINUSE, f"port {port} on 127.0.0.1 is already in use") from exc


def aws_environment(endpoint_url: str) -> dict[str, str]:
    """The environment that points boto3 at a local endpoint, with fake credentials and the region."""
    return {
        "AWS_ENDPOINT_URL": endpoint_url,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        **FAKE_CREDENTIALS,
    }


def make_dynamodb_atomic() -> None:
    """moto's DynamoDB requests, answer included, one at a time in this process (idempotent)."""
    from moto.dynamodb.responses import DynamoHandler

    call_action = DynamoHandler.call_action
    if getattr(call_action, "one_at_a_time", False):
        return

    @functools.wraps(call_action)
    def one_at_a_time(self: Any) -> Any:
        with _DYNAMODB_REQUESTS:
            return call_action(self)

    one_at_a_time.one_at_a_time = True  # type: ignore[attr-defined]
    DynamoHandler.call_action = one_at_a_time  # type: ignore[method-assign]


class AwsStandIn(Service):
    """moto's server in a thread of this process, or (``own_process=True``) in a process of its own, as the
    benchmark runs it: there moto's CPU time must not hold up the Stripe stand-in in this process."""

    def __init__(self, port: int = 0, *, own_process: bool = False) -> None:
        self.port = port or free_port()
        self._server = (
            None if own_process else ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        )
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def environment(self) -> dict[str, str]:
        """What a process needs to use this stand-in instead of AWS."""
        return aws_environment(self.endpoint_url)

    def start(self) -> Self:
        # moto's ThreadedMotoServer binds in its own thread: on a port in use that thread dies and start()
        # waits for it forever. So the port is checked first, and the start is bounded.
        ensure_port_free(self.port)
        if self._server is not None:
            make_dynamodb_atomic()
            logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request otherwise
            starting = threading.Thread(target=self._server.start, name="moto-start", daemon=True)
            starting.start()
            starting.join(timeout=30)
            if starting.is_alive():
                raise RuntimeError(f"moto's server did not start on port {self.port}")
            return self
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tools.standins.aws", "-H", "127.0.0.1", "-p", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self._process.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"moto's server did not start on port {self.port}")

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
        elif self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)

    def client(self, service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def create_results_table(self, table_name: str) -> None:
        """Create the results table from ``template.yaml``'s own definition, TTL included."""
        template = load_template()
        dynamodb = self.client("dynamodb")
        dynamodb.create_table(**results_table_create_args(template, table_name))
        dynamodb.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": results_table_ttl_attribute(template)},
        )

    def put_secret(self, secret_id: str, value: str) -> None:
        secrets = self.client("secretsmanager")
        try:
            secrets.create_secret(Name=secret_id, SecretString=value)
        except secrets.exceptions.ResourceExistsException:
            secrets.put_secret_value(SecretId=secret_id, SecretString=value)


if __name__ == "__main__":  # moto's server in a process of its own, with DynamoDB's atomicity
    from moto.server import main

    make_dynamodb_atomic()
    main(sys.argv[1:])
