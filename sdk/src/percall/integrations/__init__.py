"""Integrations; each imports its framework or library only when it is imported itself.

- ``percall.integrations.django.PercallMiddleware``: one event per Django request.
- ``percall.integrations.asgi.PercallMiddleware``: one event per ASGI request (Starlette, FastAPI).
- ``percall.integrations.httpx`` / ``.requests``: outbound HTTP calls, ``traceparent`` sent on.
- ``percall.integrations.openai`` / ``.anthropic``: LLM calls with model and token usage.
- ``percall.integrations.celery``: one event per task run.
"""
