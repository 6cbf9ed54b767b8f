"""A three-column schema (area: double, rooms: optional long, street: string) that the unit tests
decode requests against, and V2 tensors for it."""

import pytest

from lifecycle.contract.signature import Column
from serving.columns import InputSchema
from serving.errors import RequestError

SCHEMA = InputSchema(
    (
        Column("area", "double", "number", True),
        Column("rooms", "long", "integer", False),
        Column("street", "string", "string", True),
    )
)


def refused(call, field: str, problem: str) -> None:
    with pytest.raises(RequestError) as error:
        call()
    assert error.value.field == field
    assert problem in error.value.problem, error.value.problem


def tensors(n: int = 2) -> list[dict]:
    return [
        {"name": "area", "shape": [n], "datatype": "FP64", "data": [1.5] * n},
        {"name": "rooms", "shape": [n, 1], "datatype": "INT64", "data": [[3]] * n},
        {"name": "street", "shape": [n], "datatype": "BYTES", "data": ["Pave"] * n},
    ]


def flat_tensors(n: int = 2) -> list[dict]:
    """Tensors the typed decoding takes (no [[value]] rows)."""
    return [
        {"name": "area", "shape": [n], "datatype": "FP64", "data": [1.5] * n},
        {"name": "rooms", "shape": [n], "datatype": "INT64", "data": [3] * n},
        {"name": "street", "shape": [n], "datatype": "BYTES", "data": ["Pave"] * n},
    ]
