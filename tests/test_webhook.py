"""The alert webhook: delivers with its token from one thread; a bounded queue when the endpoint is down; no
redirect followed; no response, however broken, stops the sender thread."""

import json
import logging
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from agents.alerts.webhook import Webhook
from infra import metrics


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


class Recorder(BaseHTTPRequestHandler):
    """Answers every request with 204 and records (method, path, Authorization, body) on the server."""

    def _record(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.server.requests.append((self.command, self.path, self.headers["Authorization"],
                                     self.rfile.read(length)))
        self.send_response(204)
        self.end_headers()

    do_GET = do_POST = _record

    def log_message(self, *args):
        pass


def serve(handler) -> HTTPServer:
    server = HTTPServer(("127.0.0.1", 0), handler)
    server.requests = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def failures() -> float:
    return metrics.REGISTRY.get_sample_value("sentinel_alert_webhook_failures_total") or 0.0


@pytest.mark.parametrize("status", [302, 307])
def test_a_redirect_is_a_failed_attempt_and_the_token_goes_nowhere_else(status, caplog):
    elsewhere = serve(Recorder)

    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(status)
            self.send_header("Location", f"http://127.0.0.1:{elsewhere.server_port}/steal")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    redirecting = serve(Redirect)
    before = failures()
    try:
        hook = Webhook(f"http://127.0.0.1:{redirecting.server_port}/hook", token="s3cret-t0ken", attempts=2,
                       first_delay=0.01)
        with caplog.at_level(logging.WARNING, logger="agents.alerts.webhook"):
            assert hook.send({"id": "a0"}) is False
    finally:
        redirecting.shutdown()
        elsewhere.shutdown()
    assert elsewhere.requests == []
    assert failures() == before + 1
    assert f"HTTP {status} redirect to 127.0.0.1" in caplog.text
    assert "s3cret-t0ken" not in caplog.text


class ScriptedServer:
    """A raw TCP server: the nth connection gets the nth scripted reply (bytes, then close; None: close
    at once), every later one a 204. Records each request's head and body."""

    def __init__(self, replies: list[bytes | None]):
        self.replies = list(replies)
        self.requests: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(body) < length:
                    body += conn.recv(65536)
                self.requests.append(head + b"\r\n\r\n" + body)
                reply = self.replies.pop(0) if self.replies else b"HTTP/1.1 204 No Content\r\n\r\n"
                if reply is not None:
                    conn.sendall(reply)

    def close(self):
        self.sock.close()


def test_malformed_and_cut_off_responses_never_stop_the_sender_thread(caplog):
    server = ScriptedServer([
        b"garbage\r\n\r\n",                                        # not HTTP at all
        b"HTTP/1.1 200 OK\r\nContent-Type: text/pl",                # closed in the middle of the headers
        None,                                                       # closed without a response
    ])
    before = failures()
    try:
        hook = Webhook(f"http://127.0.0.1:{server.port}/hook", token="t0ken", attempts=1, first_delay=0.01)
        with caplog.at_level(logging.WARNING, logger="agents.alerts.webhook"):
            for i in range(4):
                assert hook.send_in_background({"id": f"a{i}"})
            deadline = time.monotonic() + 10
            while len(server.requests) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        server.close()
    assert len(server.requests) == 4
    assert b'{"id": "a3"}' in server.requests[3] and b"Authorization: Bearer t0ken" in server.requests[3]
    assert hook._thread.is_alive()
    assert failures() == before + 3
    # an ordinary failed attempt (so retried), not a bug
    assert "attempt 1/1 failed: RemoteProtocolError" in caplog.text


def test_an_unexpected_exception_costs_one_alert_and_is_logged_with_its_type(monkeypatch, caplog):
    good = serve(Recorder)
    hook = Webhook(f"http://127.0.0.1:{good.server_port}/hook", attempts=1)
    real_attempt = hook._attempt
    calls = []

    def buggy_once(*args):
        calls.append(1)
        if len(calls) == 1:
            raise ZeroDivisionError("a bug")
        return real_attempt(*args)

    monkeypatch.setattr(hook, "_attempt", buggy_once)
    before = failures()
    try:
        with caplog.at_level(logging.WARNING, logger="agents.alerts.webhook"):
            assert hook.send_in_background({"id": "a0"}) and hook.send_in_background({"id": "a1"})
            deadline = time.monotonic() + 10
            while not good.requests and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        good.shutdown()
    assert [json.loads(body)["id"] for *_, body in good.requests] == ["a1"]
    assert hook._thread.is_alive()
    assert failures() == before + 1
    assert "alert 'a0' not sent, unexpected ZeroDivisionError" in caplog.text
