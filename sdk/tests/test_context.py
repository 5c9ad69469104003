"""The attribution context: nesting, threads, pools, asyncio tasks, trace context."""

from __future__ import annotations

import asyncio
import threading

import percall

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_events_inherit_the_context_and_inner_blocks_override_it(server, client):
    with percall.context(tenant="globex", feature="search", team="core"):
        with percall.context(feature="summarize", workflow="digest", tenant=None):
            client.track("llm.call")
        client.track("api.call", team="growth")
    client.track("api.call")

    inner, outer, outside = server.stored
    assert (inner["tenant"], inner["feature"], inner["workflow"]) == (
        "globex",
        "summarize",
        "digest",
    )
    assert (outer["feature"], outer["team"]) == ("search", "growth")  # the call's own wins
    assert "tenant" not in outside


def test_context_is_read_when_tracked_not_when_flushed(server, make_client):
    client = make_client(flush_interval=60)
    with percall.context(tenant="globex"):
        client.track("api.call")
    client.flush()
    assert server.stored[0]["tenant"] == "globex"


def test_a_plain_thread_does_not_inherit_but_percall_thread_wrap_and_the_pool_do(server, client):
    with percall.context(tenant="globex", workflow="ingest"):
        plain = threading.Thread(target=client.track, args=("plain",))
        helper = percall.Thread(target=client.track, args=("thread",))
        wrapped = threading.Thread(target=percall.wrap(client.track), args=("wrapped",))
        for thread in (plain, helper, wrapped):
            thread.start()
            thread.join()
        with percall.ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(client.track, ["pool-a", "pool-b"]))

    tenants = {event["type"]: event.get("tenant") for event in server.stored}
    assert tenants == {
        "plain": None,
        "thread": "globex",
        "wrapped": "globex",
        "pool-a": "globex",
        "pool-b": "globex",
    }


def test_asyncio_tasks_inherit_the_context(server, client):
    async def work(name: str) -> None:
        await asyncio.sleep(0)
        client.track(name)

    async def main() -> None:
        with percall.context(tenant="globex"):
            task = asyncio.create_task(work("task"))
            await asyncio.gather(work("gathered"), task)
        await work("after")

    asyncio.run(main())
    tenants = {event["type"]: event.get("tenant") for event in server.stored}
    assert tenants == {"task": "globex", "gathered": "globex", "after": None}


def test_an_incoming_traceparent_makes_events_children_of_the_request_span(server, client):
    with percall.context(traceparent=TRACEPARENT) as scope:
        client.track("tool.call")
        outgoing = percall.traceparent()

    (event,) = server.stored
    assert event["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert event["parent_span_id"] == scope.span_id != "00f067aa0ba902b7"
    assert scope.parent_span_id == "00f067aa0ba902b7"
    assert event["span_id"] not in (scope.span_id, "00f067aa0ba902b7")
    assert outgoing == f"00-4bf92f3577b34da6a3ce929d0e0e4736-{scope.span_id}-01"


def test_an_invalid_traceparent_starts_a_new_trace():
    for bad in (
        "",
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
    ):
        assert percall.traceparent_parse(bad) is None
    with percall.context(traceparent="garbage") as scope:
        assert scope.trace_id and scope.parent_span_id is None


def test_events_outside_a_trace_carry_no_trace_ids(server, client):
    client.track("api.call")
    assert "trace_id" not in server.stored[0]
