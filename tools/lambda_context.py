"""The context object Lambda hands a handler, for running handlers outside Lambda (the local run, the API
Gateway stand-in, the tests)."""

from dataclasses import dataclass


@dataclass
class FakeLambdaContext:
    """What the handlers and Powertools read from Lambda's context object."""

    remaining_ms: int = 20_000
    function_name: str = "PingFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:PingFunction"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
