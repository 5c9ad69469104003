"""Strict request bodies: every API input refuses keys it does not declare.

A write that silently drops ``{"tenant": ..., "status": "paid", "balance": ...}`` looks to the
caller as if it worked, and a field added to a serializer later (or read from ``request.data``
by a view) would start honouring what was ignored yesterday. So every input serializer derives
from ``StrictInput``, which answers 400 naming the first unexpected key, before any field is
validated; endpoints that take no body validate it with ``NoInput``, so extra keys there are
refused too. Query strings are not bodies: filters read from them are parsed by name.
"""

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request


class StrictInput(serializers.Serializer):
    """A plain input serializer that refuses undeclared keys (400, ``field`` = the key)."""

    def unexpected_message(self, name: str) -> str:
        """The error for the undeclared key ``name``; a serializer may say more (why it is
        not accepted), but must name the key."""
        accepted = ", ".join(sorted(self.fields)) or "no fields"
        return f"unexpected field (this endpoint accepts {accepted})"

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unexpected = sorted(str(key) for key in data if key not in self.fields)
            if unexpected:
                name = unexpected[0]
                raise serializers.ValidationError(
                    {name: [self.unexpected_message(name)]}, code="unexpected_field"
                )
        return super().to_internal_value(data)


class NoInput(StrictInput):
    """The body of an action that takes none: absent, ``{}`` or null; any key is a 400."""

    @classmethod
    def check(cls, request: Request) -> None:
        data = request.data
        if data is None or (isinstance(data, Mapping) and not data):
            return
        cls(data=data).is_valid(raise_exception=True)
