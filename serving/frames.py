"""One DataFrame per batch of checked rows, in signature order, with the dtypes batch scoring gives
(`lifecycle.scoring.batch.conform_to_signature`): float64 for every numeric column (None -> NaN),
object strings with None for missing text, bool (object when a value is missing). The online and
batch predictions of the same rows are then the same numbers.

The frame is built from one block per dtype with pandas' block API for downstream libraries
(`frame_from_blocks`, the only code here that touches pandas internals). From a dict of columns
pandas keeps a block per column and merges them, a copy of every value, at the model's first
column selection: together 1.5 ms of a 1,000-row request of the Ames model. Where that API is
missing or has changed, `frame_from_dict` builds the same frame with pandas' public constructor.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from serving.columns import InputSchema

log = logging.getLogger(__name__)

# What a pandas without the block API, or with another signature for it, raises.
_BLOCK_API_ERRORS = (ImportError, AttributeError, TypeError)
_block_api_error: str | None = None  # why the block API failed, once it has


@dataclass(frozen=True, eq=False)
class FrameLayout:
    """Where each kind of column sits in the signature: the frame is built one block per dtype."""

    kinds: tuple[tuple[str, str], ...]  # (column, kind) in signature order
    numbers: tuple[str, ...]
    number_positions: np.ndarray
    texts: tuple[str, ...]
    text_positions: np.ndarray
    booleans: tuple[tuple[int, str], ...]  # their dtype depends on the values (bool, or object with None)
    labels: pd.Index  # the frame's column labels, in signature order

    @classmethod
    def of(cls, schema: InputSchema) -> FrameLayout:
        def where(kinds):
            chosen = [(i, c.name) for i, c in enumerate(schema.columns) if c.kind in kinds]
            return tuple(name for _, name in chosen), np.array([i for i, _ in chosen], dtype=np.intp)

        numbers, number_positions = where(("number", "integer"))
        texts, text_positions = where(("string",))
        return cls(
            kinds=tuple((c.name, c.kind) for c in schema.columns),
            numbers=numbers,
            number_positions=number_positions,
            texts=texts,
            text_positions=text_positions,
            booleans=tuple((i, c.name) for i, c in enumerate(schema.columns) if c.kind == "boolean"),
            labels=pd.Index([c.name for c in schema.columns], dtype=object),
        )


def _flags(values: Sequence) -> np.ndarray:
    return np.array(values, dtype=object if None in values else bool)


def numeric_block(columns: dict[str, Sequence], layout: FrameLayout) -> np.ndarray | None:
    """The numeric columns as one float64 array, one row per column in `layout.numbers` order
    (None -> NaN); None when the signature has no numeric column."""
    if not layout.numbers:
        return None
    return np.array([columns[name] for name in layout.numbers], dtype="float64")


def frame_from_blocks(
    columns: dict[str, Sequence], layout: FrameLayout, numbers: np.ndarray | None = None
) -> pd.DataFrame:
    """The frame from one block per dtype, with pandas' block API (`pandas.core.internals`).
    `numbers` is the numeric block when it is already built (`numeric_block`)."""
    from pandas.core.internals import BlockManager
    from pandas.core.internals.api import make_block

    rows = len(columns[layout.kinds[0][0]])
    blocks = []
    if layout.numbers:
        values = numeric_block(columns, layout) if numbers is None else numbers
        blocks.append(make_block(values, placement=layout.number_positions))
    if layout.texts:
        values = np.empty((len(layout.texts), rows), dtype=object)
        for i, name in enumerate(layout.texts):
            values[i] = columns[name]
        blocks.append(make_block(values, placement=layout.text_positions))
    for position, name in layout.booleans:
        blocks.append(make_block(_flags(columns[name])[np.newaxis], placement=[position]))
    manager = BlockManager(blocks, [layout.labels, pd.RangeIndex(rows)])
    return pd.DataFrame._from_mgr(manager, axes=manager.axes)


def frame_from_dict(
    columns: dict[str, Sequence], layout: FrameLayout, numbers: np.ndarray | None = None
) -> pd.DataFrame:
    """The same frame with pandas' public constructor: one array per column (a numeric one from
    its row of `numbers` when that is given)."""
    arrays = {}
    number_row = {name: i for i, name in enumerate(layout.numbers)} if numbers is not None else {}
    for name, kind in layout.kinds:
        values = columns[name]
        if kind in ("number", "integer"):
            arrays[name] = numbers[number_row[name]] if numbers is not None else np.array(values, dtype="float64")
        elif kind == "boolean":
            arrays[name] = _flags(values)
        else:
            text = np.empty(len(values), dtype=object)
            text[:] = values
            arrays[name] = text
    rows = len(columns[layout.kinds[0][0]])
    return pd.DataFrame(arrays, index=pd.RangeIndex(rows), columns=layout.labels, copy=False)


def frame_from_columns(
    columns: dict[str, Sequence], layout: FrameLayout, numbers: np.ndarray | None = None
) -> pd.DataFrame:
    """The batch's frame: from blocks until the block API fails once (a pandas without it, or
    with another signature), from then on with the public constructor; the same frame either way.
    `numbers` is the numeric block when the caller built it already (`numeric_block`)."""
    global _block_api_error
    if _block_api_error is None:
        try:
            return frame_from_blocks(columns, layout, numbers)
        except _BLOCK_API_ERRORS as exc:
            _block_api_error = f"{type(exc).__name__}: {exc}"
            log.warning("pandas' block API failed (%s); frames are built with pd.DataFrame", _block_api_error)
    return frame_from_dict(columns, layout, numbers)
