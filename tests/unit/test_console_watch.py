"""The console's view of the watch (contract §15, §16): `tally api` asks `tally watch`, needs the
`ops` role, and says so when the watch does not answer. A stand-in watch, no broker."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import orjson
import pytest
from fastapi.testclient import TestClient

from streams.api.app import create_app
from streams.settings import Settings

pytestmark = pytest.mark.unit
SECRET = "unit-secret-that-is-long-enough-for-hs256!"
VOLUMES = {
    "minutes": 15,
    "partitions": [0, 1],
    "volumes": [
        {"minute": "2026-12-07T09:30:00Z", "currency": "EUR", "type": "ledger.withdrawn.v1",
         "count": 8, "amount": 800},
    ],
}  # fmt: skip
ALERTS = {
    "partitions": [0, 1],
    "alerts": [
        {"id": "177425e5-ee0e-5eaf-a146-30463094835d", "account_id": "<alice>", "count": 21,
         "window_s": 60, "first_at": "2026-12-07T09:30:38.824622Z",
         "last_at": "2026-12-07T09:30:41.102311Z"},
    ],
}  # fmt: skip


def bearer(*roles: str) -> dict[str, str]:
    claims = {"sub": "op", "roles": list(roles), "exp": int(time.time()) + 60}
    return {"authorization": f"Bearer {jwt.encode(claims, SECRET)}"}


class FakeWatch(BaseHTTPRequestHandler):
    asked: list[str] = []

    def do_GET(self) -> None:
        FakeWatch.asked.append(self.path)
        body = VOLUMES if self.path.startswith("/v1/volumes") else ALERTS
        data = orjson.dumps(body)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: Any) -> None:
        pass


@pytest.fixture(scope="module")
def watch_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeWatch)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def client(watch_url: str) -> TestClient:
    return TestClient(create_app(Settings(jwt_secret=SECRET, watch_url=watch_url)))


def test_the_api_answers_with_the_watch_s_volumes_and_alerts(watch_url: str) -> None:
    answer = client(watch_url).get("/v1/ops/watch?minutes=5", headers=bearer("ops"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["volumes"] == VOLUMES["volumes"] and body["partitions"] == [0, 1]
    assert body["alerts"][0]["account_id"] == "<alice>" and body["error"] is None
    assert "/v1/volumes?minutes=5" in FakeWatch.asked
    assert answer.headers["cache-control"] == "no-store"


def test_the_overview_card_lists_the_latest_alerts_escaped(watch_url: str) -> None:
    card = client(watch_url).get("/console/views/watch", headers=bearer("ops"))
    assert card.status_code == 200
    assert "&lt;alice&gt;" in card.text and "<alice>" not in card.text
    assert "21" in card.text and "60 s" in card.text


def test_a_watch_that_does_not_answer_is_said_so_not_an_error_of_the_api() -> None:
    down = client("http://127.0.0.1:9")  # the discard port: nothing listens
    answer = down.get("/v1/ops/watch", headers=bearer("ops"))
    assert answer.status_code == 200
    assert answer.json()["volumes"] is None
    assert answer.json()["error"].startswith("the watch does not answer at http://127.0.0.1:9")
    card = down.get("/console/views/watch", headers=bearer("ops"))
    assert "the watch does not answer" in card.text


@pytest.mark.parametrize("path", ["/v1/ops/watch", "/console/views/watch"])
def test_the_watch_views_need_the_ops_role(watch_url: str, path: str) -> None:
    api = client(watch_url)
    assert api.get(path).status_code == 401
    assert api.get(path, headers=bearer("customer")).status_code == 403
    assert api.get(path, headers=bearer("risk")).status_code == 403


def test_minutes_beyond_what_the_watch_keeps_are_refused(watch_url: str) -> None:
    answer = client(watch_url).get("/v1/ops/watch?minutes=61", headers=bearer("ops"))
    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/problem+json"
