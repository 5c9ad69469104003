"""OpenAI and Anthropic wrappers on recorded responses: model, tokens, sync, async, streams."""

from __future__ import annotations

import asyncio

import pytest

import percall
from percall.integrations import anthropic as percall_anthropic
from percall.integrations import openai as percall_openai
from tests.fake_providers import APIStatusError, fake_anthropic, fake_openai


def test_openai_chat_completion(server, client):
    openai = percall_openai.instrument(fake_openai(), client=client)
    with percall.context(tenant="globex", feature="summarize", new_span=True) as scope:
        reply = openai.chat.completions.create(model="gpt-4o", messages=[])
    assert reply.choices[0].message.content.startswith("Hello")

    (event,) = server.stored
    assert event["type"] == "llm.call" and event["provider"] == "openai"
    assert event["model"] == "gpt-4o-2024-08-06"  # the model served, not the one asked for
    assert (event["input_tokens"], event["output_tokens"]) == (1812, 96)
    assert (event["cache_read_tokens"], event["reasoning_tokens"]) == (1536, 0)
    assert event["external"] is True and event["status_code"] == 200
    assert event["tenant"] == "globex" and event["feature"] == "summarize"
    assert event["parent_span_id"] == scope.span_id and event["trace_id"] == scope.trace_id
    assert event["properties"] == {
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o",
    }


def test_openai_responses_api_reads_input_output_and_reasoning(server, client):
    openai = percall_openai.instrument(fake_openai(), client=client)
    openai.responses.create(model="o3-mini", input="hi")
    (event,) = server.stored
    assert event["model"] == "o3-mini-2025-01-31"
    assert (event["input_tokens"], event["cache_read_tokens"]) == (328, 128)
    assert (event["output_tokens"], event["reasoning_tokens"]) == (1052, 960)


def test_openai_chat_stream_takes_usage_from_the_final_chunk(server, client):
    openai = percall_openai.instrument(fake_openai(), client=client, stream_usage=True)
    stream = openai.chat.completions.create(model="gpt-4o-mini", messages=[{}], stream=True)
    assert server.stored == []  # nothing until the stream ends
    text = "".join(getattr(c.choices[0].delta, "content", "") for c in stream if c.choices)
    assert text == "Hello"

    (event,) = server.stored
    assert event["model"] == "gpt-4o-mini-2024-07-18"
    assert (event["input_tokens"], event["output_tokens"]) == (19, 10)
    assert openai.chat.completions.calls[0]["stream_options"] == {"include_usage": True}


def test_openai_responses_stream_reads_the_completed_event(server, client):
    openai = percall_openai.instrument(fake_openai(), client=client)
    with openai.responses.create(model="gpt-4.1", input="hi", stream=True) as stream:
        for _ in stream:
            pass
    (event,) = server.stored
    assert (event["model"], event["input_tokens"], event["output_tokens"]) == (
        "gpt-4.1-2025-04-14",
        37,
        11,
    )


def test_openai_async_and_async_stream(server, client):
    openai = percall_openai.instrument(fake_openai(async_=True), client=client)

    async def main():
        await openai.chat.completions.create(model="gpt-4o", messages=[])
        stream = await openai.chat.completions.create(model="gpt-4o-mini", messages=[], stream=True)
        async for _ in stream:
            pass

    asyncio.run(main())
    first, second = server.stored
    assert first["input_tokens"] == 1812 and second["output_tokens"] == 10


def test_a_failed_call_is_recorded_with_its_status_and_raises(server, client):
    fake = fake_openai()
    fake.chat.completions.fail_with = 429
    openai = percall_openai.instrument(fake, client=client)
    with pytest.raises(APIStatusError):
        openai.chat.completions.create(model="gpt-4o", messages=[])
    (event,) = server.stored
    assert event["status_code"] == 429 and event["model"] == "gpt-4o"
    assert event["properties"]["error.type"] == "APIStatusError"
    assert "input_tokens" not in event


def test_instrumenting_twice_meters_once(server, client):
    openai = percall_openai.instrument(percall_openai.instrument(fake_openai(), client=client))
    openai.chat.completions.create(model="gpt-4o", messages=[])
    assert len(server.stored) == 1


def test_anthropic_message_counts_cache_reads_and_writes_in_the_input(server, client):
    anthropic = percall_anthropic.instrument(fake_anthropic(), client=client)
    anthropic.messages.create(model="claude-sonnet-4-5", max_tokens=1024, messages=[])
    (event,) = server.stored
    assert event["provider"] == "anthropic" and event["model"] == "claude-sonnet-4-5-20250929"
    assert event["input_tokens"] == 21 + 188086 + 1200
    assert (event["cache_read_tokens"], event["cache_write_tokens"]) == (1200, 188086)
    assert event["output_tokens"] == 393


def test_anthropic_stream_sync_and_async(server, client):
    anthropic = percall_anthropic.instrument(fake_anthropic(), client=client)
    for _ in anthropic.messages.create(model="claude-sonnet-4-5", messages=[], stream=True):
        pass
    async_anthropic = percall_anthropic.instrument(fake_anthropic(async_=True), client=client)

    async def main():
        stream = await async_anthropic.messages.create(model="claude", messages=[], stream=True)
        async for _ in stream:
            pass

    asyncio.run(main())
    for event in server.stored:
        assert event["model"] == "claude-sonnet-4-5-20250929"
        assert (event["input_tokens"], event["cache_read_tokens"]) == (25 + 2048, 2048)
        assert event["output_tokens"] == 15  # the last delta's cumulative count
    assert len(server.stored) == 2


def test_a_stream_closed_early_is_still_recorded_once(server, client):
    anthropic = percall_anthropic.instrument(fake_anthropic(), client=client)
    stream = anthropic.messages.create(model="claude", messages=[], stream=True)
    next(iter(stream))
    stream.close()
    stream.close()
    (event,) = server.stored
    assert event["model"] == "claude-sonnet-4-5-20250929" and event["input_tokens"] == 2073


def test_anthropic_stream_helper_is_metered_from_the_accumulated_message(server, client):
    fake = fake_anthropic()
    anthropic = percall_anthropic.instrument(fake, client=client)
    with anthropic.messages.stream(model="claude-sonnet-4-5", messages=[]) as stream:
        assert server.stored == []
        for _ in stream:
            pass
    (event,) = server.stored
    assert event["model"] == "claude-sonnet-4-5-20250929"
    assert event["input_tokens"] == 21 + 188086 + 1200 and event["output_tokens"] == 393

    async def main():
        async_anthropic = percall_anthropic.instrument(fake_anthropic(async_=True), client=client)
        async with async_anthropic.messages.stream(model="claude", messages=[]) as stream:
            for _ in stream:
                pass

    asyncio.run(main())
    assert len(server.stored) == 2 and server.stored[1]["output_tokens"] == 393


def test_anthropic_stream_helper_that_fails_to_open_is_recorded(server, client):
    fake = fake_anthropic()
    fake.messages.fail_with = 529
    anthropic = percall_anthropic.instrument(fake, client=client)
    with pytest.raises(APIStatusError), anthropic.messages.stream(model="claude", messages=[]):
        pass
    (event,) = server.stored
    assert event["status_code"] == 529 and event["model"] == "claude"
