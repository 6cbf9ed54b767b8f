"""A request's rows once decoded and checked, one sequence per signature column, and the rules
about a batch of them that every decoding applies (typed or general, V1 or V2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from serving.errors import RequestError


@dataclass
class Rows:
    """Checked rows as one list or tuple per signature column (None for a missing value)."""

    columns: dict[str, Sequence]
    count: int
    field: str  # where the rows are in the body (`instances`, `inputs`), for errors about them all


def check_count(count: int, where: str, max_rows: int) -> None:
    if count == 0:
        raise RequestError(where, "the batch is empty: send at least one row")
    if count > max_rows:
        raise RequestError(where, f"the batch has {count} rows, more than the limit of {max_rows} per request")


def with_absent_columns(columns: dict[str, Sequence | None], count: int | None, where: str, max_rows: int) -> Rows:
    """Rows of columns sent one array each: the optional columns not sent (None) are all null.
    No column sent at all is an empty batch."""
    check_count(count or 0, where, max_rows)
    for name, values in columns.items():
        if values is None:
            columns[name] = [None] * count
    return Rows(columns, count, where)
