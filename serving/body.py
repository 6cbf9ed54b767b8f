"""A request body as it arrived on one of the model's predict routes, before anything decodes it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Body:
    protocol: str  # "v1" or "v2"
    data: bytes
