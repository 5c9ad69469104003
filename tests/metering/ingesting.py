"""Sending test events through the real ingestion service, as an operator-wide caller."""

import json

from apps.metering.services.ingest import IngestCaller, IngestResult, events_ingest


def ingest_events(*events: dict, backfill: bool = False) -> IngestResult:
    """One JSON batch through ``events_ingest``; every event must be stored (or a duplicate)."""
    result = events_ingest(
        body=json.dumps({"events": list(events)}).encode(),
        content_type="application/json",
        headers={},
        caller=IngestCaller(api_key_prefix="test"),
        backfill=backfill,
    )
    assert result.rejected == result.conflicts == 0, result.results
    return result


def llm_event(event_id: str, at: str, model: str, tokens: int, **properties) -> dict:
    """An acme ``llm.call`` of ``model`` with ``tokens`` input tokens and ``properties``."""
    return {
        "id": event_id,
        "tenant": "acme",
        "type": "llm.call",
        "timestamp": at,
        "model": model,
        "input_tokens": tokens,
        "properties": properties,
    }
