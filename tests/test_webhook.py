"""The alert webhook: delivers with its token from one thread; a bounded queue when the endpoint is down."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

from agents.alerts.webhook import Webhook


def test_alerts_are_posted_with_the_bearer_token():
    received = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.headers["Authorization"], json.loads(body)["id"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        hook = Webhook(f"http://127.0.0.1:{server.server_port}/hook", token="t0ken")
        for i in range(3):
            assert hook.send_in_background({"id": f"a{i}"})
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.shutdown()
    assert received == [("Bearer t0ken", "a0"), ("Bearer t0ken", "a1"), ("Bearer t0ken", "a2")]


def test_a_dead_endpoint_costs_one_thread_and_a_bounded_queue():
    before = threading.active_count()
    hook = Webhook("http://127.0.0.1:9/unreachable", attempts=2, first_delay=30, queue_size=3)
    accepted = [hook.send_in_background({"id": f"a{i}"}) for i in range(50)]
    assert threading.active_count() == before + 1
    # one alert is with the sender (retrying), three wait, the rest are dropped
    assert 3 <= sum(accepted) <= 4
    assert accepted[-1] is False
