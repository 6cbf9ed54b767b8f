"""The columns a served model accepts: its signature as the contract reads it, and the text
categories its fitted encoders know."""

import pandas as pd
import pytest
from mlflow.models import ModelSignature
from mlflow.types.schema import ColSpec, Schema

from lifecycle.contract.signature import Column
from serving.columns import InputSchema, category_values
from serving.decoding import KnownText
from serving.errors import ModelLoadError


def test_the_schema_is_the_signatures_columns_in_order():
    signature = ModelSignature(
        inputs=Schema(
            [ColSpec("string", "street"), ColSpec("double", "area"), ColSpec("long", "rooms", required=False)]
        )
    )
    schema = InputSchema.from_signature(signature, {"street": ["Pave", "Grvl"], "area": ["not text"]})
    assert schema.columns == (
        Column("street", "string", "string", True),
        Column("area", "double", "number", True),
        Column("rooms", "long", "integer", False),
    )
    assert list(schema.by_name) == ["street", "area", "rooms"] and schema.names == {"street", "area", "rooms"}
    assert schema.text_values == (("street", frozenset({"Pave", "Grvl"})),)  # text columns only


@pytest.mark.parametrize(
    ("signature", "problem"),
    [
        (None, "has no input signature with column names"),
        (ModelSignature(inputs=Schema([ColSpec("binary", "photo")])), "column 'photo' has type 'binary'"),
        (
            ModelSignature(inputs=Schema([ColSpec("double", "area"), ColSpec("string", "area")])),
            "column 'area' appears twice",
        ),
    ],
    ids=["none", "unknown-type", "twice"],
)
def test_a_signature_the_contract_refuses_stops_the_server(signature, problem):
    with pytest.raises(ModelLoadError, match=problem) as error:
        InputSchema.from_signature(signature)
    assert str(error.value).endswith("it cannot check requests")


def test_the_categories_come_from_the_fitted_models_encoders():
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    frame = pd.DataFrame({"area": [1.0, 2.0, 3.0], "street": ["Pave", "Grvl", float("nan")], "zone": ["A", "B", "A"]})
    model = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [
                        (
                            "text",
                            Pipeline(
                                [
                                    ("impute", SimpleImputer(strategy="constant", fill_value="missing")),
                                    ("one_hot", OneHotEncoder()),
                                ]
                            ),
                            ["street"],
                        ),
                        ("zone", OrdinalEncoder(), ["zone"]),
                        ("numbers", "passthrough", ["area"]),
                    ]
                ),
            ),
            ("model", LinearRegression()),
        ]
    ).fit(frame, [1.0, 2.0, 3.0])
    assert category_values(model) == {"street": ["Grvl", "Pave", "missing"], "zone": ["A", "B"]}
    schema = InputSchema.from_signature(signature_of(frame), category_values(model))
    assert KnownText(schema).values == {"street": frozenset({"Grvl", "Pave", "missing"}), "zone": frozenset({"A", "B"})}


def signature_of(frame):
    from mlflow.models import infer_signature

    return infer_signature(frame)
