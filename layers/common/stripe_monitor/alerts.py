"""The only module that touches SNS: tells people when a destination's health changes."""

import threading
from typing import Any

import boto3
from aws_lambda_powertools.utilities import parameters
from botocore.config import Config

from stripe_monitor.model.destination import DestinationState, Transition

_BOTO_CONFIG = Config(connect_timeout=2, read_timeout=5, retries={"mode": "standard", "max_attempts": 3})
_SUBJECT_LIMIT = 100  # SNS's limit for e-mail subjects
_API_URL_CACHE_SECONDS = 3600


class AlertPublisher:
    """Publishes transitions to the stack's SNS topic (nothing when no topic is configured)."""

    def __init__(
        self, topic_arn: str | None, api_url_parameter: str | None = None, client: Any | None = None
    ) -> None:
        self.topic_arn = topic_arn
        self.api_url_parameter = api_url_parameter
        self._client = client  # created at the first alert: most runs publish none (cold start)
        self._client_lock = threading.Lock()  # a run's workers may alert at once; boto3.client() is not safe

    def publish(self, transition: Transition, state: DestinationState) -> bool:
        if not self.topic_arn or transition.muted:
            return False
        with self._client_lock:
            if self._client is None:
                self._client = boto3.client("sns", config=_BOTO_CONFIG)
        subject, message = alert_text(transition, state, self.api_url())
        self._client.publish(
            TopicArn=self.topic_arn,
            Subject=subject,
            Message=message,
            MessageAttributes={
                "destination_id": {"DataType": "String", "StringValue": transition.destination_id},
                "health": {"DataType": "String", "StringValue": transition.to_health},
            },
        )
        return True

    def api_url(self) -> str | None:
        """The stack's API URL for the alert's links, from its SSM parameter (None when it cannot be read:
        the alert goes out all the same)."""
        if not self.api_url_parameter:
            return None
        try:
            value = parameters.get_parameter(self.api_url_parameter, max_age=_API_URL_CACHE_SECONDS)
        except parameters.exceptions.GetParameterError:
            return None
        return str(value) if value else None


def alert_text(transition: Transition, state: DestinationState, api_url: str | None) -> tuple[str, str]:
    """A subject and a message a person can act on: what, since when, why, where to look."""
    destination = transition.destination_id
    was = transition.from_health or "unknown"
    subject = f"Stripe destination {destination} is {transition.to_health.upper()} (was {was})"
    lines = [
        f"Stripe event destination {destination} changed from {was} to {transition.to_health}"
        f" at {transition.at}.",
        f"Why: {transition.reason}",
    ]
    if transition.last_error and transition.last_error != transition.reason:
        lines.append(f"Last error: {transition.last_error}")
    last = state.last_check
    if last is not None and last.destination_status:
        lines.append(f"Stripe reports the destination {last.destination_status}"
                     + (f" ({last.disabled_reason})" if last.disabled_reason else "") + ".")  # fmt: skip
    base = api_url.rstrip("/") if api_url else "<the stack's ApiUrl output>"
    lines += [
        "",
        f"History:     GET {base}/destinations/{destination}/pings",
        f"Transitions: GET {base}/destinations/{destination}/transitions",
        f'Mute:        POST {base}/destinations/{destination}/mute  {{"until": "<ISO time>"}}',
    ]
    return subject[:_SUBJECT_LIMIT], "\n".join(lines)
