"""The general path: a request body decoded as any JSON, checked against the columns in Python, a
few set operations per column, naming the field of the first mistake (`instances[3].Lot_Area`).

The typed decoding (serving.decoding) takes the bodies that fit; this path decides the rest,
so its errors are what a client reads. Every value it passes fits its column's kind and no float
is NaN or infinite (JSON has neither).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lifecycle.contract.protocol import V2_DATATYPES_OF_KIND, V2_INTEGER_DATATYPES, is_column_shape
from lifecycle.contract.signature import Column
from serving.columns import InputSchema
from serving.errors import RequestError
from serving.rows import Rows, check_count, with_absent_columns

NoneType = type(None)

# The Python types a decoded JSON value of each column kind may have.
JSON_TYPES_OF_KIND = {
    "number": frozenset({int, float, NoneType}),
    "integer": frozenset({int, float, NoneType}),
    "string": frozenset({str, NoneType}),
    "boolean": frozenset({bool, NoneType}),
}
_JSON_NAMES = {
    int: "integer",
    float: "number",
    str: "string",
    bool: "boolean",
    NoneType: "null",
    list: "array",
    dict: "object",
}


def json_type(value: Any) -> str:
    return _JSON_NAMES.get(type(value), type(value).__name__)


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def check_value_count(data: bytes, schema: InputSchema, max_rows: int) -> None:
    """Refuses, before decoding, a body with more JSON values than a request of `max_rows` rows can
    hold. Every value after the first in an array or object follows a comma, so counting commas (at
    memchr speed) bounds how many Python objects decoding could make: what a body at the size
    limit costs in memory then stays a small multiple of its size, whatever its shape (a long
    array of `1`s or of empty arrays would otherwise cost 16 to 24 times its bytes)."""
    limit = 2 * max_rows * len(schema.columns) + 1024  # a row object has one comma per value
    commas = data.count(b",")
    if commas > limit:
        raise RequestError(
            "body", f"holds over {commas:,} values, more than {max_rows:,} rows of {len(schema.columns)} columns can be"
        )


def check_values(
    column: Column, values: Sequence, field_at: Callable[[int], str], integer_type: str | None = None
) -> None:
    """Raises RequestError naming the first value that does not fit the column. Whole numbers are
    required by an integer column, or by `integer_type` (a V2 tensor's INT datatype)."""
    allowed = JSON_TYPES_OF_KIND[column.kind]
    types = set(map(type, values))
    if types <= allowed and (NoneType not in types or not column.required):
        integer_type = integer_type or (column.type if column.kind == "integer" else None)
        if integer_type and float in types:
            for i, v in enumerate(values):
                if type(v) is float and not v.is_integer():
                    raise RequestError(field_at(i), f"expected an integer ({integer_type}), got {v!r}")
        return
    for i, v in enumerate(values):
        if v is None:
            if column.required:
                raise RequestError(field_at(i), "is required and may not be null")
        elif type(v) not in allowed:
            expected = "a number" if column.numeric else f"a {column.kind}"
            raise RequestError(field_at(i), f"expected {expected} ({column.type}), got {json_type(v)} {short(v)}")


def check_names(present, schema: InputSchema, where: str) -> None:
    unknown = sorted(set(present) - schema.names)
    if unknown:
        raise RequestError(where, f"unknown column(s): {', '.join(map(str, unknown[:10]))}")
    missing = [c.name for c in schema.columns if c.required and c.name not in present]
    if missing:
        raise RequestError(
            where, f"missing column(s): {', '.join(missing[:10])}" + (" ..." if len(missing) > 10 else "")
        )


def rows_from_records(records: list, schema: InputSchema, where: str, max_rows: int) -> Rows:
    """`[{column: value, ...}, ...]`: one object per row."""
    check_count(len(records), where, max_rows)
    for i, record in enumerate(records):
        if type(record) is not dict:
            raise RequestError(f"{where}[{i}]", f"expected an object of column values, got {json_type(record)}")
        if record.keys() != schema.names:
            check_names(record.keys(), schema, f"{where}[{i}]")
    transposed = ([r.get(c.name) for r in records] for c in schema.columns)
    columns = {}
    for column, values in zip(schema.columns, transposed, strict=False):
        check_values(column, values, lambda i, name=column.name: f"{where}[{i}].{name}")
        columns[column.name] = values
    return Rows(columns, len(records), where)


def rows_from_columns(data: dict, schema: InputSchema, where: str, max_rows: int) -> Rows:
    """`{column: [value, ...], ...}`: one list per column, all the same length."""
    check_names(data.keys(), schema, where)
    count = None
    columns = {}
    for column in schema.columns:
        name = column.name
        values = data.get(name)
        if values is None:
            if column.required:  # sent (checked above), as null
                raise RequestError(f"{where}.{name}", "is required and may not be null")
            columns[name] = None
            continue
        if type(values) is not list:
            raise RequestError(f"{where}.{name}", f"expected an array of values, got {json_type(values)}")
        if count is None:
            count = len(values)
            check_count(count, where, max_rows)
        elif len(values) != count:
            raise RequestError(f"{where}.{name}", f"has {len(values)} values; other columns have {count}")
        check_values(column, values, lambda i, name=name: f"{where}.{name}[{i}]")
        columns[name] = values
    return with_absent_columns(columns, count, where, max_rows)


def rows_from_v1(body: Any, schema: InputSchema, max_rows: int) -> Rows:
    """A V1 body: `instances` or `inputs`, as a list of records or an object of columns."""
    if type(body) is not dict:
        raise RequestError("body", f"expected a JSON object with 'instances' or 'inputs', got {json_type(body)}")
    keys = [k for k in ("instances", "inputs") if k in body]
    if len(keys) != 1:
        problem = "has both 'instances' and 'inputs'; send one" if keys else "expected key 'instances' (or 'inputs')"
        raise RequestError("body", problem)
    where = keys[0]
    data = body[where]
    if type(data) is list:
        return rows_from_records(data, schema, where, max_rows)
    if type(data) is dict:
        return rows_from_columns(data, schema, where, max_rows)
    raise RequestError(where, f"expected an array of row objects or an object of column arrays, got {json_type(data)}")


def _v2_tensors(body: Any) -> tuple[list[dict], dict | None]:
    """The request's `inputs` and `parameters`, each checked for its JSON shape."""
    if type(body) is not dict:
        raise RequestError("body", f"expected a JSON object with 'inputs', got {json_type(body)}")
    inputs = body.get("inputs")
    if type(inputs) is not list:
        raise RequestError(
            "inputs",
            "expected key 'inputs': an array of tensors"
            if inputs is None
            else f"expected an array of tensors, got {json_type(inputs)}",
        )
    parameters = body.get("parameters")
    if parameters is not None and type(parameters) is not dict:
        raise RequestError("parameters", f"expected an object, got {json_type(parameters)}")
    for i, tensor in enumerate(inputs):
        if type(tensor) is not dict:
            raise RequestError(
                f"inputs[{i}]", f"expected a tensor object (name, shape, datatype, data), got {json_type(tensor)}"
            )
        for key, kind in (("name", str), ("datatype", str), ("shape", list), ("data", list)):
            if type(tensor.get(key)) is not kind:
                got = "nothing" if key not in tensor else f"{json_type(tensor[key])} {short(tensor[key])}"
                raise RequestError(
                    f"inputs[{i}].{key}", f"expected {'an array' if kind is list else 'a string'}, got {got}"
                )
    return inputs, parameters


def request_id(body: dict) -> str | None:
    """The V2 request's optional `id`, echoed in the response."""
    value = body.get("id")
    if value is not None and type(value) is not str:
        raise RequestError("id", f"expected a string, got {json_type(value)} {short(value)}")
    return value


def rows_from_v2(body: Any, schema: InputSchema, max_rows: int) -> Rows:
    """An Open Inference Protocol request body (decoded JSON): one named 1-D tensor (or [n, 1]) per column."""
    inputs, parameters = _v2_tensors(body)
    content_type = (parameters or {}).get("content_type")
    if content_type not in (None, "pd"):
        raise RequestError(
            "parameters.content_type", f"expected 'pd' (one tensor per column) or none, got {short(content_type)}"
        )
    by_name = {}
    for i, tensor in enumerate(inputs):
        if tensor["name"] in by_name:
            raise RequestError(f"inputs[{i}].name", f"column {tensor['name']!r} is sent twice")
        by_name[tensor["name"]] = (i, tensor)
    check_names(by_name.keys(), schema, "inputs")
    count = None
    columns = {}
    for column in schema.columns:
        if column.name not in by_name:
            columns[column.name] = None
            continue
        i, tensor = by_name[column.name]
        where = f"inputs[{i}] ({column.name})"
        values = _tensor_values(tensor, column, where)
        if count is None:
            count = len(values)
            check_count(count, "inputs", max_rows)
        elif len(values) != count:
            raise RequestError(f"{where}.shape", f"has {len(values)} rows; other columns have {count}")
        integer_type = tensor["datatype"] if tensor["datatype"] in V2_INTEGER_DATATYPES else None
        check_values(column, values, lambda i, where=where: f"{where}.data[{i}]", integer_type)
        columns[column.name] = values
    return with_absent_columns(columns, count, "inputs", max_rows)


def _tensor_values(tensor: dict, column: Column, where: str) -> list:
    """A tensor's values, one per row, once its shape and datatype fit the column."""
    shape = tensor["shape"]
    if not is_column_shape(shape) or any(type(s) is not int or s < 0 for s in shape):
        raise RequestError(f"{where}.shape", f"expected [rows] or [rows, 1], got {short(shape)}")
    accepted = V2_DATATYPES_OF_KIND[column.kind]
    if tensor["datatype"] not in accepted:
        raise RequestError(
            f"{where}.datatype",
            f"column type {column.type} takes {'/'.join(sorted(accepted))}, got {tensor['datatype'][:40]}",
        )
    values = tensor["data"]
    if values and type(values[0]) is list:
        if any(type(v) is not list or len(v) != 1 for v in values):
            raise RequestError(f"{where}.data", "expected one value per row")
        values = [v[0] for v in values]
    if len(values) != shape[0]:
        raise RequestError(f"{where}.data", f"has {len(values)} values but shape {shape} says {shape[0]}")
    return values
