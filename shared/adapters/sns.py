"""SNS: publish a message to a topic, within SNS's limits."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters._errors import transient_errors

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

#: Publish limits (botocore's SNS model documents them in Publish's Message and Subject; a
#: unit test reads them there): a message of at most 256 KiB of UTF-8 by default, a subject
#: of less than 100 characters without line breaks or control characters.
MESSAGE_MAX_BYTES = 262_144
SUBJECT_MAX_CHARS = 99


def safe_subject(text: str) -> str:
    """`text` as a valid Subject: control characters as spaces, at most SUBJECT_MAX_CHARS."""
    clean = "".join(c if c.isprintable() else " " for c in text).strip()
    return clean if len(clean) <= SUBJECT_MAX_CHARS else clean[: SUBJECT_MAX_CHARS - 3] + "..."


class Topic:
    def __init__(self, client: SNSClient, topic_arn: str) -> None:
        self._client = client
        self.arn = topic_arn

    def publish(self, subject: str, message: str) -> str:
        """Publish; the message id. The message must fit MESSAGE_MAX_BYTES (the caller
        shortens what it can, so nothing is cut mid-structure here)."""
        size = len(message.encode())
        if size > MESSAGE_MAX_BYTES:
            raise ValueError(f"message of {size} bytes exceeds SNS's {MESSAGE_MAX_BYTES}")
        with transient_errors("Publish"):
            out = self._client.publish(
                TopicArn=self.arn, Subject=safe_subject(subject), Message=message
            )
        return str(out["MessageId"])
