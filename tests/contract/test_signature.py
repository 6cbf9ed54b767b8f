"""Reading a model's MLflow signature into columns: the one reader batch scoring and the predictor share."""

import re

import numpy as np
import pandas as pd
import pytest
from mlflow.models import ModelSignature, infer_signature
from mlflow.types.schema import Array, ColSpec, Schema, TensorSpec

from lifecycle.contract.signature import KINDS, Column, SignatureError, signature_columns


def signature(*specs) -> ModelSignature:
    return ModelSignature(inputs=Schema(list(specs)))


def test_every_column_type_reads_as_its_kind_in_signature_order():
    read = signature_columns(
        signature(
            ColSpec("string", "street"),
            ColSpec("double", "area"),
            ColSpec("float", "ratio"),
            ColSpec("long", "rooms", required=False),
            ColSpec("integer", "floors"),
            ColSpec("boolean", "garage", required=False),
        )
    )
    assert read == (
        Column("street", "string", "string", True),
        Column("area", "double", "number", True),
        Column("ratio", "float", "number", True),
        Column("rooms", "long", "integer", False),
        Column("floors", "integer", "integer", True),
        Column("garage", "boolean", "boolean", False),
    )
    assert [c.numeric for c in read] == [False, True, True, True, True, False]
    assert set(KINDS.values()) == {"number", "integer", "string", "boolean"}


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer")
def test_a_signature_inferred_from_a_frame_reads_back():
    frame = pd.DataFrame(
        {
            "area": [1.5, np.nan],
            "rooms": np.array([2, 3], dtype="int64"),
            "street": ["Pave", None],
            "open": [True, False],
        }
    )
    read = signature_columns(infer_signature(frame))
    assert [(c.name, c.type, c.kind) for c in read] == [
        ("area", "double", "number"),
        ("rooms", "long", "integer"),
        ("street", "string", "string"),
        ("open", "boolean", "boolean"),
    ]


@pytest.mark.parametrize(
    ("model_signature", "problem"),
    [
        (None, "models:/houses/3 has no input signature with column names"),
        (ModelSignature(inputs=None, outputs=Schema([ColSpec("double")])), "has no input signature"),
        (
            signature(ColSpec("double"), ColSpec("string")),
            "models:/houses/3: input 0 of the signature has no column name",
        ),
        (signature(ColSpec("double", "area"), ColSpec("binary", "photo")), "column 'photo' has type 'binary'"),
        (signature(ColSpec("datetime", "sold")), "column 'sold' has type 'datetime'"),
        (signature(ColSpec(Array("string"), "tags")), "column 'tags' has type 'Array(string)'"),
        (ModelSignature(inputs=Schema([TensorSpec(np.dtype("float64"), (-1,), "x")])), "column 'x' has type 'float64'"),
        (signature(ColSpec("double", "area"), ColSpec("string", "area")), "column 'area' appears twice"),
    ],
    ids=["none", "no-inputs", "unnamed", "binary", "datetime", "array", "tensor", "twice"],
)
def test_a_signature_that_cannot_be_read_is_refused_by_name(model_signature, problem):
    with pytest.raises(SignatureError, match=re.escape(problem)):
        signature_columns(model_signature, "models:/houses/3")


def test_an_unknown_type_names_the_types_a_column_may_have():
    with pytest.raises(SignatureError) as error:
        signature_columns(signature(ColSpec("binary", "photo")))
    assert str(error.value).startswith("the model: column 'photo'")
    assert "double, float, long, integer, string, boolean" in str(error.value)
