"""The input columns of a model's MLflow signature, as the kinds of value a request or a scoring file may hold.

Batch scoring and the online predictor read the signature here, so both accept the same columns
and refuse the same signatures (unnamed inputs, types neither can carry, a column named twice).
"""

from __future__ import annotations

from dataclasses import dataclass

# MLflow column type -> the kind of value it holds. Both whole-number types are read as float64
# frames (batch scoring's dtypes), but a request must send whole numbers for them.
KINDS = {
    "double": "number",
    "float": "number",
    "long": "integer",
    "integer": "integer",
    "string": "string",
    "boolean": "boolean",
}
NUMERIC_KINDS = frozenset({"number", "integer"})


class SignatureError(ValueError):
    """A signature whose inputs cannot be read as named columns of known kinds; the message names the column."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # MLflow's name: double, float, long, integer, string, boolean
    kind: str  # number, integer, string, boolean
    required: bool

    @property
    def numeric(self) -> bool:
        return self.kind in NUMERIC_KINDS


def type_name(spec) -> str:
    """MLflow's name of a column spec's type: `double`, or e.g. `Array(string)` for the types that have no name."""
    return getattr(spec.type, "name", None) or str(spec.type)


def signature_columns(signature, source: str = "the model") -> tuple[Column, ...]:
    """The input columns of an MLflow ModelSignature, in signature order. `source` names the model
    in errors. Raises SignatureError for a missing signature, an unnamed input, a type outside
    `KINDS` or a column named twice."""
    if signature is None or signature.inputs is None or not signature.inputs.inputs:
        raise SignatureError(f"{source} has no input signature with column names to check rows against")
    columns: dict[str, Column] = {}
    for position, spec in enumerate(signature.inputs.inputs):
        if spec.name is None:
            raise SignatureError(f"{source}: input {position} of the signature has no column name")
        kind = KINDS.get(type_name(spec))
        if kind is None:
            raise SignatureError(
                f"{source}: column {spec.name!r} has type {type_name(spec)!r}; "
                f"a column must be one of {', '.join(KINDS)}"
            )
        if spec.name in columns:
            raise SignatureError(f"{source}: column {spec.name!r} appears twice in the signature")
        columns[spec.name] = Column(spec.name, type_name(spec), kind, getattr(spec, "required", True))
    return tuple(columns.values())
