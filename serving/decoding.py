"""Typed decoding: a request body decoded by msgspec straight into structs made from the columns,
every value checked against its column in C, in one pass.

It takes the bodies that fit (under two thirds of the cost of decoding to Python objects and
checking them); for any other body it answers None and the general path (serving.checks)
decides, naming what is wrong. Text values among the model's own categories come back as shared
string objects (`KnownText`).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from functools import reduce
from typing import Annotated, Any, Literal

import msgspec

from lifecycle.contract.protocol import V2_DATATYPES_OF_KIND, V2_INTEGER_DATATYPES, is_column_shape
from lifecycle.contract.signature import Column
from serving.columns import InputSchema
from serving.errors import TOO_DEEP, RequestError
from serving.rows import Rows, check_count, with_absent_columns

# Each kind's value in msgspec's typed decoding: what the general checks accept, minus what needs
# a closer look there (whole floats in integer columns; integers orjson would decode as floats).
_VALUE_TYPES = {
    "number": float,  # JSON integers too, as floats: the frame holds float64 either way
    "integer": Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)],  # larger ones: the general path
    "string": str,
    "boolean": bool,
}

# A column with more categories, or one longer, is decoded as any text: the decoders stay small.
KNOWN_VALUES_PER_COLUMN = 256
KNOWN_VALUE_LENGTH = 64
# Decoders kept with some known-text columns opened to any text (KnownText.decoders); past it, a
# body with values the model does not know is decoded with every text column open.
MAX_OPENED_SETS = 16
# The column of a V1 value msgspec refused: `$.instances[3].Misc_Feature` (rows), `$.inputs.Alley[7]` (columns).
_V1_COLUMN = re.compile(r"- at `\$\.(?:instances|inputs)(?:\[\d+\])?\.(.+?)(?:\[\d+\])?`$")


def value_type(column: Column):
    """A column's value in typed decoding; null only where the column is optional."""
    value = _VALUE_TYPES[column.kind]
    return value if column.required else value | None


def v1_decoder(columns: tuple[Column, ...], value_of: Callable[[Column], Any]) -> msgspec.json.Decoder:
    """Decodes `{"instances" or "inputs": rows}`, rows being row objects or an object of column
    arrays, into typed structs. Unknown keys and missing required columns fail it; optional
    columns default to null."""
    row = _typed_struct("Row", columns, value_of)
    arrays = _typed_struct("Columns", columns, lambda c: list[value_of(c)])
    rows = list[row] | arrays | msgspec.UnsetType
    body = msgspec.defstruct("V1Body", [("instances", rows, msgspec.UNSET), ("inputs", rows, msgspec.UNSET)], gc=False)
    return msgspec.json.Decoder(body)


def v2_decoder(columns: tuple[Column, ...], value_of: Callable[[Column], Any]) -> msgspec.json.Decoder | None:
    """Decodes an Open Inference Protocol body into one typed struct per tensor, chosen by the
    tensor's name. None for a one-column schema: msgspec reads a lone tagged struct without its
    tag, and a tensor needs its name."""
    if len(columns) < 2:
        return None
    # One struct per column, tagged with its name; a tensor is any of them (their union).
    tensors = tuple(
        msgspec.defstruct(
            f"Tensor{i}",
            [("shape", list[int]), ("datatype", str), ("data", list[value_of(c)])],
            tag_field="name",
            tag=c.name,
            gc=False,
        )
        for i, c in enumerate(columns)
    )
    body = msgspec.defstruct(
        "V2Body",
        [
            ("inputs", list[reduce(operator.or_, tensors)]),
            ("parameters", dict | None, None),
            ("id", str | None, None),
            ("outputs", list | None, None),  # the outputs asked for, checked by serving.tensors.answer_form
        ],
        gc=False,
    )
    return msgspec.json.Decoder(body)


def _typed_struct(name: str, columns: tuple[Column, ...], value_of: Callable[[Column], Any]) -> type:
    """A struct with one field per column, of type `value_of(column)`; an optional one may be null or absent."""
    fields = [
        (f"c{i}", value_of(c)) if c.required else (f"c{i}", value_of(c) | None, None) for i, c in enumerate(columns)
    ]
    return msgspec.defstruct(
        name,
        fields,
        kw_only=True,
        forbid_unknown_fields=True,
        gc=False,
        rename={f"c{i}": c.name for i, c in enumerate(columns)},  # column names need not be identifiers
    )


class KnownText:
    """Each text column's categories, from the model (serving.columns.category_values), decoded as msgspec Literals.

    A Literal hands back one shared str object for every occurrence of a value, where decoding as
    `str` allocates a new string each time. Category values repeat from row to row: a 1,000-row
    request of the Ames model then allocates 40,000 strings fewer, and the model's category checks
    hash and compare a few dozen objects per column instead of 1,000 new ones. A body with a value
    the model does not know fails this decoding and is decoded as any text. The values are fixed
    at load: what one client sends never changes how another's request is decoded, and the
    decoders are made once.
    """

    def __init__(self, schema: InputSchema):
        self.schema = schema
        self.values: dict[str, frozenset[str]] = {
            name: values
            for name, values in schema.text_values
            if len(values) <= KNOWN_VALUES_PER_COLUMN and all(len(v) <= KNOWN_VALUE_LENGTH for v in values)
        }
        self._opened: dict[frozenset[str], tuple] = {}
        self.v1_decoder, self.v2_decoder = self.decoders(frozenset())

    def decoders(self, opened: frozenset[str]) -> tuple | None:
        """The V1 and V2 decoders with the columns in `opened` decoded as any text, the others as
        their known values; made once per set, None past MAX_OPENED_SETS sets."""
        made = self._opened.get(opened)
        if made is None and len(self._opened) < MAX_OPENED_SETS:
            value_of = lambda c: value_type(c) if c.name in opened else self._value_type(c)  # noqa: E731
            made = self._opened[opened] = (
                v1_decoder(self.schema.columns, value_of),
                v2_decoder(self.schema.columns, value_of),
            )
        return made

    def unknown_value_column(self, error: msgspec.ValidationError) -> str | None:
        """The known-text column of a V1 value the model does not know, named by msgspec's error."""
        match = _V1_COLUMN.search(str(error))
        return match.group(1) if match and match.group(1) in self.values else None

    def _value_type(self, column: Column):
        known = self.values.get(column.name)
        if not known or column.kind != "string":
            return value_type(column)
        value = Literal[tuple(sorted(known))]
        return value if column.required else value | None


class TypedDecoders:
    """A schema's decoders, made once at load: with the known text values, and with any text.

    msgspec's generated types cannot be pickled; server workers get the decoders pickled as their
    schema and make them again."""

    def __init__(self, schema: InputSchema):
        self.schema = schema
        self.known_text = KnownText(schema)
        self.v1_decoder = v1_decoder(schema.columns, value_type)
        self.v2_decoder = v2_decoder(schema.columns, value_type)

    def __reduce__(self):
        return TypedDecoders, (self.schema,)


def _typed_body(known: KnownText, protocol: int, decoder: msgspec.json.Decoder, data: bytes) -> Any:
    """The body decoded with the known text values, else with any text; None when neither takes
    it (JSON that is not valid is not tried twice). Nesting past the decoder's depth is a 400.

    A V1 value the model does not know opens its column to any text and the body is decoded
    again, the other columns keeping their shared strings (a held-out row with one rare category
    costs a second decode, not the sharing of every other column). `protocol` is 0 for V1, 1 for V2."""
    try:
        opened: frozenset[str] = frozenset()
        while (decoders := known.decoders(opened)) is not None:
            try:
                return decoders[protocol].decode(data)
            except msgspec.ValidationError as exc:
                column = known.unknown_value_column(exc) if protocol == 0 else None
                if column is None or column in opened:
                    break
                opened |= {column}
            except msgspec.DecodeError:
                return None
        try:
            return decoder.decode(data)
        except msgspec.DecodeError:  # ValidationError included
            return None
    except RecursionError:
        raise RequestError("body", TOO_DEEP) from None


def rows_from_v1_typed(data: bytes, decoders: TypedDecoders, max_rows: int) -> Rows | None:
    """The rows of a V1 body (row objects or column arrays) whose every value fits the signature.
    Known text values first (`KnownText`), then any. None for any other body (a mistake, JSON that
    is not one), for the general path."""
    body = _typed_body(decoders.known_text, 0, decoders.v1_decoder, data)
    return None if body is None else _v1_rows(body, decoders.schema, max_rows)


def _v1_rows(body, schema: InputSchema, max_rows: int) -> Rows | None:
    if (body.instances is msgspec.UNSET) == (body.inputs is msgspec.UNSET):
        return None  # neither or both: the general path says which
    where, sent = ("instances", body.instances) if body.inputs is msgspec.UNSET else ("inputs", body.inputs)
    if type(sent) is list:
        check_count(len(sent), where, max_rows)
        return Rows(
            dict(zip(schema.by_name, zip(*map(msgspec.structs.astuple, sent), strict=False), strict=False)),
            len(sent),
            where,
        )
    columns = dict(zip(schema.by_name, msgspec.structs.astuple(sent), strict=False))
    counts = {len(values) for values in columns.values() if values is not None}
    if len(counts) > 1:
        return None  # columns of different lengths
    return with_absent_columns(columns, counts.pop() if counts else None, where, max_rows)


def rows_from_v2_typed(data: bytes, decoders: TypedDecoders, max_rows: int) -> tuple[Rows, Any] | None:
    """The rows and the decoded body (its `id`, `parameters` and `outputs`) of an Open Inference
    Protocol body whose every tensor fits its column, known text values first (`KnownText`). None
    for any other body, for the general path."""
    if decoders.v2_decoder is None:
        return None
    body = _typed_body(decoders.known_text, 1, decoders.v2_decoder, data)
    return None if body is None else _v2_rows(body, decoders.schema, max_rows)


def _v2_rows(body, schema: InputSchema, max_rows: int) -> tuple[Rows, Any] | None:
    if body.parameters and body.parameters.get("content_type") not in (None, "pd"):
        return None
    columns: dict[str, Sequence | None] = dict.fromkeys(schema.by_name)
    count = None
    for tensor in body.inputs:
        column = schema.by_name[type(tensor).__struct_config__.tag]
        shape, values = tensor.shape, tensor.data
        if (
            columns[column.name] is not None  # sent twice
            or not is_column_shape(shape)
            or shape[0] != len(values)
            or (count is not None and len(values) != count)
            or tensor.datatype not in V2_DATATYPES_OF_KIND[column.kind]
        ):
            return None
        if (
            column.kind == "number"
            and tensor.datatype in V2_INTEGER_DATATYPES
            and not all(v is None or v.is_integer() for v in values)
        ):
            return None  # an INT tensor holds whole numbers
        columns[column.name] = values
        count = len(values)
    if any(c.required and columns[c.name] is None for c in schema.columns):
        return None  # a required column not sent
    return with_absent_columns(columns, count, "inputs", max_rows), body
