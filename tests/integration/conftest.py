"""Fixtures shared by the integration tests."""

import json
import uuid
from typing import Any

import pytest

from tests.conftest import Deployment, reset_caches


class Alerts:
    """An SNS topic of the stack, with an SQS queue subscribed to read what was published."""

    def __init__(self, deployment: Deployment) -> None:
        sns, self.sqs = deployment.aws.client("sns"), deployment.aws.client("sqs")
        self.topic_arn = sns.create_topic(Name=f"alerts-{uuid.uuid4().hex[:8]}")["TopicArn"]
        self.queue_url = self.sqs.create_queue(QueueName=f"alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        sns.subscribe(TopicArn=self.topic_arn, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])

    def messages(self) -> list[dict[str, Any]]:
        found = []
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in batch:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return found


@pytest.fixture
def alerts(deployment, monkeypatch) -> Alerts:
    topic = Alerts(deployment)
    monkeypatch.setenv("ALERT_TOPIC_ARN", topic.topic_arn)
    reset_caches()
    return topic
