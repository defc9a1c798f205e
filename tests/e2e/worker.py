"""The e2e suite's worker: records every message it accepts into the `e2e-received` queue.

Runs inside the cluster from the sidecar image (Python + botocore, nothing else needed). A body
`{"id": "...", "sleep": 2}` holds the request that long first, to keep messages in flight. The
record goes to a queue, not to memory, so deliveries survive the pod deletions the suite makes.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.session

_client = botocore.session.get_session().create_client(
    "sqs", region_name="us-east-1", endpoint_url=os.environ["SQS_ENDPOINT"]
)
_record_url = _client.get_queue_url(QueueName=os.environ.get("RECORD_QUEUE", "e2e-received"))[
    "QueueUrl"
]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            message = json.loads(body)
            time.sleep(min(float(message.get("sleep", 0)), 30))
            record = {
                "id": message["id"],
                "pod": os.environ.get("HOSTNAME", ""),
                "receive_count": self.headers.get("X-Carrier-Receive-Count"),
            }
            _client.send_message(QueueUrl=_record_url, MessageBody=json.dumps(record))
        except Exception as exc:  # any failure: 500, so the message stays in its queue
            self.send_error(500, str(exc)[:200])
            return
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # health
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler)
    server.daemon_threads = False  # server_close() waits for requests in progress
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
