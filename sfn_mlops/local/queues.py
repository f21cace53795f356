"""SQS event source mappings for the local cloud: Lambda's poller, which moto does not run.

On AWS, an event source mapping polls the queue, gathers messages for up to
MaximumBatchingWindowInSeconds (or until BatchSize), invokes the function synchronously with
`{"Records": [...]}`, and deletes the batch when the function succeeds; on a function error
the messages become visible again after the visibility timeout (and go to the queue's
dead-letter queue after maxReceiveCount). This poller does the same against moto's SQS, so
the debounce of new-data events (config/pipeline.yaml `data_trigger`) runs locally as it does
on AWS, with the local window. moto's own mapping (which invokes once per message, without a
window) is not used: the local stack registers its mappings here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Invoke = Callable[[str, dict[str, Any]], tuple[Any, str | None]]
#: How long one ReceiveMessage long-polls (bounded: the poller notices stop() this often).
RECEIVE_WAIT_SECONDS = 1


@dataclass
class EventSource:
    queue_url: str
    queue_arn: str
    function_arn: str
    batch_size: int
    window_seconds: float
    batches: list[dict[str, Any]] = field(default_factory=list)  # what was invoked (tests)


class EventSourcePoller:
    def __init__(self, client: Callable[[], Any], invoke: Invoke, region: str) -> None:
        self._client = client
        self._invoke = invoke
        self._region = region
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.sources: list[EventSource] = []
        self._busy = 0
        self._lock = threading.Lock()

    def add(self, source: EventSource) -> None:
        self.sources.append(source)
        thread = threading.Thread(target=self._run, args=(source,), daemon=True)
        self._threads.append(thread)
        thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=RECEIVE_WAIT_SECONDS + 5)

    def idle(self) -> bool:
        with self._lock:
            return self._busy == 0

    def _receive(self, source: EventSource, max_messages: int) -> list[dict[str, Any]]:
        response = self._client().receive_message(
            QueueUrl=source.queue_url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
            AttributeNames=["All"],
        )
        return list(response.get("Messages", []))

    def _run(self, source: EventSource) -> None:
        while not self._stop.is_set():
            try:
                batch = self._receive(source, source.batch_size)
                if not batch:
                    continue
                with self._lock:
                    self._busy += 1
                try:
                    # the window opens with the first message (Lambda's batching window)
                    closes = time.monotonic() + source.window_seconds
                    while len(batch) < source.batch_size and not self._stop.is_set():
                        if time.monotonic() >= closes:
                            break
                        batch += self._receive(source, source.batch_size - len(batch))
                    self._deliver(source, batch)
                finally:
                    with self._lock:
                        self._busy -= 1
            except Exception:  # the cloud is stopping (server gone): end quietly
                if self._stop.is_set():
                    return
                time.sleep(RECEIVE_WAIT_SECONDS)

    def _deliver(self, source: EventSource, messages: list[dict[str, Any]]) -> None:
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {},
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": source.queue_arn,
                "awsRegion": self._region,
            }
            for m in messages
        ]
        event = {"Records": records}
        source.batches.append(event)
        _payload, error = self._invoke(source.function_arn, event)
        if error:  # left in the queue: visible again after the visibility timeout
            return
        client = self._client()
        for start in range(0, len(messages), 10):
            client.delete_message_batch(
                QueueUrl=source.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages[start : start + 10])
                ],
            )
