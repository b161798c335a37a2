"""A stream that ends before the model finished is a failure, even when the HTTP body ended
cleanly (no chunked encoding, connection closed): an error event, never a fake [DONE]."""

from __future__ import annotations

import json
import socket
import threading

import httpx
import pytest

from test_web_sessions import add_user, sign_in

CHUNK = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m",
         "choices": [{"index": 0, "delta": {"content": "답변의 앞부분 "}, "finish_reason": None}]}


class CutOffUpstream:
    """Answers every chat request with two chunks, then closes the connection: valid HTTP/1.1
    without Content-Length or chunked encoding, so the body simply ends."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                event = b"data: " + json.dumps(CHUNK).encode() + b"\n\n"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                             + event + event)

    def close(self):
        self.sock.close()


@pytest.fixture
def cut_off(platform_factory):
    upstream = CutOffUpstream()
    platform = platform_factory({"models": [{
        "name": "m", "backend": "openai", "base_url": f"http://127.0.0.1:{upstream.port}/v1",
        "zone": "internal", "max_grade": "C", "max_retries": 0}]})
    yield platform
    upstream.close()


def test_api_stream_cut_off_is_an_error_not_done(cut_off):
    with httpx.stream("POST", cut_off.v1 + "/chat/completions", headers=cut_off.headers(), timeout=30,
                      json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "질문"}]}) as r:
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["code"] == "upstream_unavailable"
    assert "답변의 앞부분" in events[0]
    row = cut_off.usage_rows()[0]
    assert row.status == 503 and row.error_code == "upstream_unavailable"


def test_window_keeps_the_partial_answer_with_a_notice(cut_off):
    add_user(cut_off, "hong")
    client, csrf = sign_in(cut_off, "hong")
    conversation = client.post("/api/conversations", headers={"X-CSRF-Token": csrf}).json()["id"]
    client.post(f"/api/conversations/{conversation}/messages", headers={"X-CSRF-Token": csrf},
                json={"content": "질문", "model": "m"})
    answer = client.get(f"/api/conversations/{conversation}/messages").json()["data"][-1]
    assert answer["role"] == "assistant" and "답변의 앞부분" in answer["content"]
    assert "모델이 지금 응답하지 않습니다" in answer["meta"]["error"]
