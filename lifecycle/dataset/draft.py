"""Drafting a data-set config from a CSV or Parquet file: `make init-config DATA=... TARGET=...`.

Every column is typed and bounded as observed, the task, metric and search space follow from the
target, and the YAML says in comments what was seen. Bounds are widened past the observed range:
the draft describes the data's kind, so next month's file is not refused for one bigger house.
A person reviews it; derived features, clipping and fill values are theirs to add.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import tempfile
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from lifecycle.dataset.config import DatasetConfig, Task, load_config, parse_config
from lifecycle.dataset.ingest import CSV_SUFFIXES, PARQUET_SUFFIXES, ingest_table

CATEGORY_CAP = 50  # more levels than this are left open (no `categories`): a list nobody can review
CLASS_CODE_LIMIT = 10  # a numeric target with at most this many values holds class codes, not amounts
SKEW_FOR_LOG = 0.75  # a positive target skewed past this is fitted on its log and judged by RMSLE
NULL_LIMIT = 0.05  # how blank a column seen complete may become before validation stops the run
NULL_SLACK = 0.05  # room above a column's observed null fraction
DUPLICATE_SLACK = 0.01
CLOSE_NAMES = 3
POSITIVE_LABELS = {"1", "true", "t", "yes", "y", "positive", "pos"}

# Without hand-made features, gradient boosting that learns slowly and lets each split see a third
# of the columns (max_features) generalises best on the bundled data sets (Ames, telco churn); a
# linear model is the simple rival.
SEARCH_SPACES: dict[str, list[dict[str, Any]]] = {
    "regression": [
        {
            "estimator": "hist_gradient_boosting",
            "params": {
                "learning_rate": [0.03],
                "max_iter": [1200],
                "max_leaf_nodes": [15],
                "l2_regularization": [1.0],
                "max_features": [0.3],
                "early_stopping": [False],
            },
        },
        {"estimator": "ridge", "params": {"alpha": [1.0, 10.0]}},
    ],
    "classification": [
        {"estimator": "logistic_regression", "params": {"C": [0.1, 1.0]}},
        {
            "estimator": "hist_gradient_boosting",
            "params": {
                "learning_rate": [0.02],
                "max_iter": [400],
                "max_leaf_nodes": [7],
                "min_samples_leaf": [50],
                "max_features": [0.3],
                "early_stopping": [False],
            },
        },
    ],
}


class DraftError(ValueError):
    """A file no config can be drafted for; the message names the file, column and value."""


@dataclass(frozen=True)
class ColumnDraft:
    """One input column: its spec and what was observed, or why it is left out."""

    name: str
    spec: dict[str, Any] | None
    note: str


@dataclass(frozen=True)
class Draft:
    config: DatasetConfig
    text: str  # the config as commented YAML
    summary: str
    warnings: list[str] = field(default_factory=list)


# Reading and typing


def read_table_for_draft(uri: str, target: str, task: Task | None) -> tuple[pd.DataFrame, Task]:
    """The file as the pipeline will read it, and the task.

    Read twice: pandas' own guess types the columns; the second read takes the text columns (and a
    classifier's label) as text, as the ingest step will, where "NA" or "None" is a level, not a blank.
    """
    guessed = ingest_table(uri).frame
    require_target(guessed, target, uri)
    task = task or infer_task(guessed[target])
    text = [str(name) for name in guessed.columns if name != target and column_kind(guessed[name]) == "categorical"]
    if task == "classification":
        text.append(target)
    frame = ingest_table(uri, text).frame if text else guessed
    return frame, task


def column_kind(values: pd.Series) -> str:
    """Numbers (not booleans, which a client sends as true/false) are numeric; the rest is text."""
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    return "numeric" if numeric else "categorical"


def require_target(frame: pd.DataFrame, target: str, uri: str) -> None:
    columns = [str(name) for name in frame.columns]
    if target not in columns:
        lowered = {name.lower(): name for name in columns}
        close = [lowered[n] for n in difflib.get_close_matches(target.lower(), lowered, n=CLOSE_NAMES, cutoff=0.6)]
        hint = f"close names: {', '.join(close)}" if close else f"its columns: {', '.join(columns[:8])}"
        more = "" if close or len(columns) <= 8 else f", ... ({len(columns)} in all)"
        raise DraftError(f"{uri} has no target column {target!r}; {hint}{more}")
    if len(columns) == 1:
        raise DraftError(f"{uri} has no columns besides the target {target!r}: nothing to learn from")
    present = frame[target].dropna()
    if present.empty:
        raise DraftError(f"target {target!r} in {uri} is empty in every row")
    if present.nunique() == 1:
        raise DraftError(
            f"target {target!r} in {uri} holds one value ({present.iloc[0]!r}) in every row: nothing to learn"
        )


def infer_task(values: pd.Series) -> Task:
    """Text or a handful of numeric codes is classification; numbers with many values are amounts."""
    if column_kind(values) == "categorical" or values.dropna().nunique() <= CLASS_CODE_LIMIT:
        return "classification"
    return "regression"


# Columns


def draft_column(name: str, values: pd.Series) -> ColumnDraft:
    rows = len(values)
    present = values.dropna()
    distinct = int(present.nunique())
    nulls = rows - len(present)
    if present.empty:
        return ColumnDraft(name, None, "left out: empty in every row")
    if distinct == 1 and not nulls:
        return ColumnDraft(name, None, f"left out: one value ({present.iloc[0]!r}) in every row, nothing to learn")
    if is_identifier(values):
        return ColumnDraft(name, None, f"left out: an identifier (a different value in each of the {rows} rows)")
    kind = column_kind(values)
    spec: dict[str, Any] = {"type": kind}
    if kind == "numeric":
        finite = present[present.abs() != math.inf].astype("float64")
        if finite.empty:
            return ColumnDraft(name, None, "left out: no finite number in any row")
        spec.update(zip(("min", "max"), numeric_bounds(finite), strict=True))
        note = f"{number_text(finite.min())} to {number_text(finite.max())}, {distinct} distinct"
    else:
        levels = sorted(present.astype(str).unique())
        if distinct <= CATEGORY_CAP:
            spec["categories"] = levels
            note = f"{distinct} levels"
        else:
            note = f"{distinct} levels: over {CATEGORY_CAP}, so the list is left open"
    limit = null_limit(nulls / rows)
    if limit is not None:
        spec["max_null_fraction"] = limit
        note += f", {nulls / rows:.1%} null"
    return ColumnDraft(name, spec, note)


def is_identifier(values: pd.Series) -> bool:
    """Whole numbers or text, present and different in every row: a key, which a model would only memorise."""
    whole = pd.api.types.is_integer_dtype(values) or column_kind(values) == "categorical"
    return len(values) > 1 and whole and values.notna().all() and values.nunique() == len(values)


def numeric_bounds(values: pd.Series) -> tuple[float, float]:
    """Validation bounds: the observed range widened by its span (at least a tenth of the values'
    size, so a column that barely varied may still grow); never below 0 if none was; 0/1 flags stay 0/1."""
    low, high = float(values.min()), float(values.max())
    if set(values.unique()) <= {0.0, 1.0}:
        return 0, 1
    pad = max(high - low, 0.1 * max(abs(low), abs(high))) or 1.0
    step = 10.0 ** math.floor(math.log10(pad))
    lower = rounded(math.floor((low - pad) / step) * step, step)
    upper = rounded(math.ceil((high + pad) / step) * step, step)
    return (max(lower, 0) if low >= 0 else lower), upper


def rounded(value: float, step: float) -> float:
    """`value`, a multiple of `step`, without float noise (an int when whole)."""
    digits = max(0, -math.floor(math.log10(step)))
    value = round(value, digits)
    return int(value) if value == int(value) else value


def number_text(value: float) -> str:
    return f"{value:.6g}"


def null_limit(fraction: float) -> float | None:
    """A column's own null limit: what was seen plus some slack, in steps of 5%; None if it was complete."""
    if fraction == 0:
        return None
    return min(1.0, math.ceil(round((fraction + NULL_SLACK) * 20, 9)) / 20)


# The target


def target_section(values: pd.Series, task: Task, target: str, uri: str) -> tuple[dict[str, Any], str, str]:
    """The `target` mapping, the promotion metric and a note of what was observed."""
    present = values.dropna()
    if task == "classification":
        labels = present.astype(str)
        counts = labels.value_counts()
        if len(counts) > 2:
            shown = ", ".join(repr(label) for label in sorted(counts.index)[:5]) + (", ..." if len(counts) > 5 else "")
            numbers = pd.to_numeric(labels, errors="coerce").notna().all()
            hint = "; to predict it as a number pass --task regression" if numbers else ""
            raise DraftError(
                f"target {target!r} in {uri} holds {len(counts)} classes ({shown}); "
                f"a config describes two-class classification only{hint}"
            )
        classes = ordered_classes(counts)
        note = (
            f"{target}: {counts[classes[0]]} rows {classes[0]!r}, {counts[classes[1]]} rows {classes[1]!r}. "
            f"The positive class (last, the one ROC-AUC and F1 score) is {classes[1]!r}; swap them if the other "
            "is the event of interest."
        )
        return {"name": target, "classes": classes}, "test_roc_auc", note
    numbers = pd.to_numeric(present, errors="coerce")
    text = present[numbers.isna()]
    if len(text):
        raise DraftError(
            f"target {target!r} in {uri} is text ({text.iloc[0]!r} in row {text.index[0] + 1}), not a number "
            "to regress on; pass --task classification"
        )
    skew = float(numbers.skew()) if len(numbers) > 2 else 0.0
    note = f"{target}: {number_text(numbers.min())} to {number_text(numbers.max())}, {numbers.nunique()} distinct"
    note += f", skew {skew:.2f}."
    if (numbers > 0).all() and skew > SKEW_FOR_LOG:
        note += " Positive and right-skewed: the model fits log(target), errors count relatively (RMSLE)."
        return {"name": target, "transform": "log"}, "test_rmsle", note
    return {"name": target}, "test_rmse", note


def ordered_classes(counts: pd.Series) -> list[str]:
    """The two labels, positive last: the one that reads as yes/true/1, else the rarer one."""
    labels = sorted(counts.index, key=lambda label: (-counts[label], label))
    yes = [label for label in labels if label.strip().lower() in POSITIVE_LABELS]
    positive = yes[0] if len(yes) == 1 else labels[-1]
    return [next(label for label in labels if label != positive), positive]


# Names and the rest of the config


def dataset_name(uri: str) -> str:
    """`telco_churn` from s3://bucket/raw/Telco-Churn.csv.gz."""
    base = uri.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in sorted(CSV_SUFFIXES + PARQUET_SUFFIXES, key=len, reverse=True):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return re.sub(r"[^a-z0-9]+", "_", base).strip("_") or "dataset"


def model_name(name: str, target: str) -> str:
    """`ames-sale-price`: the data set and what is predicted, unless the name already says it."""
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    target_words = [w for w in re.split(r"[^a-z0-9]+", target.lower()) if w]
    extra = [] if set(target_words) <= set(words) else target_words
    return "-".join(words + extra) or "model"


def one_hot_min_frequency(rows: int) -> int:
    """Levels seen in fewer than ~1% of rows (at most 10) share one column: too rare to learn from,
    and a column each lets a linear model fit noise."""
    return min(10, max(1, rows // 100))


def min_rows(rows: int) -> int:
    """Half the rows seen, rounded down to one significant digit: a file much shorter is suspect."""
    half = max(1, rows // 2)
    scale = 10 ** (len(str(half)) - 1)
    return half // scale * scale


def duplicate_limit(fraction: float) -> float:
    return math.ceil(round((fraction + DUPLICATE_SLACK) * 100, 9)) / 100


def draft_config(data_uri: str, target: str, task: Task | None = None) -> Draft:
    """A config for the file at `data_uri` (local path or s3://) predicting `target`; `task` overrides
    the inferred one. Raises DraftError (or IngestError for an unreadable file) naming the problem."""
    frame, task = read_table_for_draft(data_uri, target, task)
    rows = len(frame)
    target_spec, metric, target_note = target_section(frame[target], task, target, data_uri)
    columns = [draft_column(str(name), frame[name]) for name in frame.columns if name != target]
    kept = {c.name: c.spec for c in columns if c.spec is not None}
    if not kept:
        reasons = "; ".join(f"{c.name} {c.note}" for c in columns)
        raise DraftError(f"{data_uri} has no usable columns besides the target {target!r}: {reasons}")
    duplicates = int(frame.duplicated().sum())
    name = dataset_name(data_uri)
    raw = {
        "name": name,
        "description": f"{target} ({task}), drafted from {data_uri}.",
        "data_uri": data_uri,
        "task": task,
        "target": target_spec,
        "registry": {"model_name": model_name(name, target), "metric": metric, "margin": 0.0},
        "validation": {
            "min_rows": min_rows(rows),
            "max_null_fraction": NULL_LIMIT,
            "max_duplicate_fraction": duplicate_limit(duplicates / rows),
        },
        # Without a key, identical rows may be distinct records (two customers on the same plan).
        "processing": {"drop_duplicates": False},
        "features": {"one_hot_min_frequency": one_hot_min_frequency(rows)},
        "split": {"test_size": 0.2, "seed": 42},
        "training": {"cv_folds": 5, "search_space": SEARCH_SPACES[task]},
        "columns": kept,
    }
    config = parse_config(raw, source=f"the config drafted from {data_uri}")
    notes = section_notes(data_uri, rows, target_note, duplicates)
    text = render(raw, notes, columns)
    if parse_config(yaml.safe_load(text), source="the drafted YAML") != config:
        raise DraftError(f"the YAML drafted from {data_uri} does not read back as the config it describes")
    warnings = target_warnings(frame[target], target)
    return Draft(config, text, summarize(config, columns, rows, warnings), warnings)


def target_warnings(values: pd.Series, target: str) -> list[str]:
    missing = int(values.isna().sum())
    if not missing:
        return []
    return [f"{missing} row(s) have no {target}: validation refuses the file until they are filled or removed."]


# Writing


def section_notes(uri: str, rows: int, target_note: str, duplicates: int) -> dict[str, str]:
    return {
        "target": target_note,
        "validation": (
            f"{rows} rows, {duplicates} identical. A column seen complete may be at most {NULL_LIMIT:.0%} null; "
            "a column seen with blanks has its own max_null_fraction."
        ),
        "processing": (
            f"Identical rows ({duplicates}) are kept: without a key they may be distinct records; set "
            "drop_duplicates if they are copies. Clip heavy-tailed columns here if a linear model wins."
        ),
        "features": (
            f"Levels seen in fewer than {one_hot_min_frequency(rows)} rows share one one-hot column. Add by hand: "
            "derived columns (arithmetic over numeric ones) and fill_values for blanks that mean a level (no garage, "
            "no veneer)."
        ),
        "training": (
            "Slow gradient boosting over a third of the columns per split, and a linear rival: good on the "
            "bundled data sets. Widen the search for this one."
        ),
        "columns": f"Observed in {uri}: range (numbers) or levels (text), distinct values, null fraction.",
    }


def printable(text: str) -> str:
    """`text` with the characters that would end a comment line shown as escapes."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def comment(text: str, indent: str = "") -> str:
    return "\n".join(f"{indent}# {line}" for line in textwrap.wrap(printable(text), 100 - len(indent)))


class LayoutDumper(yaml.SafeDumper):
    """Lists of plain values on one line (wrapped when long), the rest as blocks: configs/*.yaml's layout."""

    def represent_sequence(self, tag, sequence, flow_style=None):
        plain = not any(isinstance(item, dict | list) for item in sequence)
        return super().represent_sequence(tag, sequence, flow_style=plain or None)


def block(key: str, value: Any, flow_leaves: bool = False) -> str:
    """`key: value` as YAML; `flow_leaves` writes a mapping of plain values on one line."""
    return yaml.dump(
        {key: value},
        Dumper=LayoutDumper,
        sort_keys=False,
        default_flow_style=None if flow_leaves else False,
        width=110,
        allow_unicode=True,
    )


def render(raw: dict[str, Any], notes: dict[str, str], columns: list[ColumnDraft]) -> str:
    parts = [comment(f"A draft config for {raw['data_uri']}: review it before training on it.")]
    for key, value in raw.items():
        if key in notes:
            parts.append(comment(notes[key]))
        if key == "columns":
            parts.append("columns:\n" + "\n".join(render_column(c) for c in columns))
        else:
            parts.append(block(key, value).rstrip("\n"))
    return "\n".join(parts) + "\n"


def render_column(column: ColumnDraft) -> str:
    if column.spec is None:
        return comment(f"{column.name}: {column.note}", indent="  ")
    first, *rest = block(column.name, column.spec, flow_leaves=True).rstrip("\n").split("\n")
    return "\n".join([f"  {first}  # {printable(column.note)}", *(f"  {line}" for line in rest)])


def already_exists(out: Path) -> DraftError:
    return DraftError(f"{out} already exists; pass --force to replace it, or choose another --out")


def refuse_existing(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise already_exists(out)


def write_draft(draft: Draft, out: str | Path, force: bool = False) -> Path:
    """Writes the draft to `out` after reading it back with load_config; an existing file is kept
    unless `force`. The file appears whole or not at all."""
    out = Path(out)
    refuse_existing(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, scratch = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".yaml", dir=out.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(draft.text)
        if load_config(scratch) != draft.config:
            raise DraftError(f"{out}: the written YAML does not read back as the drafted config")
        if force:
            os.replace(scratch, out)
        else:
            os.link(scratch, out)  # fails if another writer got there first: never a silent overwrite
    except FileExistsError:
        raise already_exists(out) from None
    finally:
        Path(scratch).unlink(missing_ok=True)
    return out


def summarize(config: DatasetConfig, columns: list[ColumnDraft], rows: int, warnings: list[str]) -> str:
    numeric, categorical = len(config.numeric_columns), len(config.categorical_columns)
    open_lists = sum(1 for c in columns if c.spec and c.spec["type"] == "categorical" and "categories" not in c.spec)
    left_out = [c for c in columns if c.spec is None]
    candidates = sum(math.prod(len(v) for v in family.params.values()) for family in config.training.search_space)
    predicted = f"log({config.target.name})" if config.target.transform == "log" else config.target.name
    classes = f" (classes {config.target.classes}, positive last)" if config.target.classes else ""
    opened = f" ({open_lists} with more than {CATEGORY_CAP} levels, left open)" if open_lists else ""
    text = f"{config.name}: {rows} rows, {numeric} numeric and {categorical} categorical columns{opened}. "
    if left_out:
        text += "Left out: " + "; ".join(f"{c.name} ({c.note.removeprefix('left out: ')})" for c in left_out) + ". "
    text += (
        f"Task {config.task} of {predicted}{classes}, promoted on {config.registry.metric}, "
        f"registered as {config.registry.model_name}; {candidates} candidates, {config.training.cv_folds}-fold CV. "
        "Review the bounds, levels and search space, add derived features by hand, then train with "
        "`make run CONFIG=<this file>`."
    )
    return " ".join([text, *warnings])
