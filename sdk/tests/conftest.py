"""Shared fakes: a Percall ingestion endpoint on httpx's MockTransport (no network)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

import percall


class FakePercall:
    """Answers ``POST /api/v1/events`` like the server: stores each (tenant, id) once, reports
    repeats as duplicates, and can be told to fail the next requests."""

    def __init__(self) -> None:
        self.events: dict[tuple[Any, str], dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.headers: list[httpx.Headers] = []
        self.faults: list[Callable[[], httpx.Response]] = []  # consumed one per request
        self.reject: Callable[[dict[str, Any]], str | None] = lambda event: None
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.headers.append(request.headers)
            if self.faults:
                return self.faults.pop(0)()
            body = json.loads(request.content)
            self.requests.append(body)
            accepted, results = 0, []
            for index, event in enumerate(body["events"]):
                code = self.reject(event)
                key = (event.get("tenant"), event["id"])
                if code:
                    results.append(
                        {
                            "index": index,
                            "id": event["id"],
                            "status": "rejected",
                            "code": code,
                            "message": f"{code}!",
                        }
                    )
                elif key in self.events:
                    results.append(
                        {
                            "index": index,
                            "id": event["id"],
                            "status": "duplicate",
                            "code": "duplicate",
                            "message": "already stored",
                        }
                    )
                else:
                    self.events[key] = event
                    accepted += 1
            rejected = sum(r["status"] == "rejected" for r in results)
            return httpx.Response(
                207 if rejected else 200,
                json={
                    "accepted": accepted,
                    "duplicates": len(results) - rejected,
                    "conflicts": 0,
                    "rejected": rejected,
                    "results": results,
                },
            )

    @property
    def stored(self) -> list[dict[str, Any]]:
        return list(self.events.values())


@pytest.fixture
def server() -> FakePercall:
    return FakePercall()


@pytest.fixture
def make_client(server: FakePercall) -> Iterator[Callable[..., percall.Percall]]:
    made: list[percall.Percall] = []

    def make(**options: Any) -> percall.Percall:
        options.setdefault("backoff_base", 0.001)
        options.setdefault("backoff_max", 0.01)
        client = percall.Percall(
            "http://percall.test", "pc_test", transport=httpx.MockTransport(server), **options
        )
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., percall.Percall]) -> percall.Percall:
    return make_client(sync=True)
