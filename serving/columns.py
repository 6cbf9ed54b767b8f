"""The columns a served model accepts: its signature's columns (lifecycle.contract.signature) and
the text values its fitted encoders know for them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

from lifecycle.contract.signature import Column, SignatureError, signature_columns
from serving.errors import ModelLoadError


@dataclass(frozen=True)
class InputSchema:
    columns: tuple[Column, ...]
    # (column, its known text values) for text columns whose categories the model knows
    text_values: tuple[tuple[str, frozenset[str]], ...] = ()

    @cached_property
    def names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns)

    @cached_property
    def by_name(self) -> dict[str, Column]:
        """The columns by name, in signature order."""
        return {c.name: c for c in self.columns}

    @classmethod
    def from_signature(cls, signature, categories: dict[str, Sequence[str]] | None = None) -> InputSchema:
        """From an MLflow ModelSignature with named column inputs, and the model's text categories
        per column (`category_values`), which become the text columns' known values. A signature
        the contract cannot read stops the server (ModelLoadError)."""
        try:
            columns = signature_columns(signature)
        except SignatureError as exc:
            raise ModelLoadError(f"{exc}; it cannot check requests") from None
        categories = categories or {}
        text_values = tuple(
            (c.name, frozenset(categories[c.name])) for c in columns if c.kind == "string" and categories.get(c.name)
        )
        return cls(columns, text_values)


def category_values(model) -> dict[str, list[str]]:
    """The text categories a fitted model knows for each input column: from every encoder with
    `categories_` (OneHotEncoder, OrdinalEncoder) found in its Pipelines and ColumnTransformers,
    by the input column names it is applied to."""
    found: dict[str, set[str]] = {}

    def visit(estimator, columns) -> None:
        if hasattr(estimator, "transformers_"):  # a fitted ColumnTransformer: its fitted parts and their columns
            for _, part, selected in estimator.transformers_:
                if not isinstance(part, str):  # "drop", "passthrough"
                    names = list(selected) if all(isinstance(c, str) for c in selected) else None
                    visit(part, names)
        elif hasattr(estimator, "steps"):  # a Pipeline
            for _, step in estimator.steps:
                if step is not None and not isinstance(step, str):
                    visit(step, columns)
        elif hasattr(estimator, "categories_"):
            names = list(getattr(estimator, "feature_names_in_", None) if columns is None else columns) or []
            if len(names) == len(estimator.categories_):
                for name, categories in zip(names, estimator.categories_, strict=False):
                    found.setdefault(name, set()).update(c for c in categories if isinstance(c, str))

    visit(model, None)
    return {name: sorted(values) for name, values in found.items()}
