"""Batch scoring with a registered model, in chunks, so memory stays flat for any input size."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lifecycle.contract.signature import Column, SignatureError, signature_columns
from lifecycle.dataset.ingest import (
    IngestError,
    csv_header,
    csv_options,
    expanded,
    file_format,
)
from lifecycle.dataset.storage import (
    StorageError,
    check_writable,
    fetch_to_file,
    upload_file,
    written_whole,
)
from lifecycle.registry.registered_model import load_registered
from lifecycle.scoring.sample import UniformSample


class SchemaMismatchError(ValueError):
    """Input rows that do not match the model's signature; the message names each column."""


class UnscorableRowsError(ValueError):
    """Rows that match the signature but that the model refuses (e.g. a derived feature overflowing)."""


def model_columns(signature, model_uri: str) -> tuple[Column, ...]:
    """The input columns of `model_uri`'s MLflow signature; SchemaMismatchError naming what keeps
    rows from being checked against it."""
    try:
        return signature_columns(signature, model_uri)
    except SignatureError as exc:
        raise SchemaMismatchError(str(exc)) from None


def conform_to_signature(chunk: pd.DataFrame, columns: Sequence[Column], source: str) -> pd.DataFrame:
    """The chunk's signature columns with the signature's dtypes, or one error naming every problem."""
    problems = []
    missing = [c.name for c in columns if c.name not in chunk and c.required]
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    out = {}
    for column in columns:
        if column.name not in chunk:
            out[column.name] = pd.Series(np.nan if column.numeric else None, index=chunk.index)
            continue
        values = chunk[column.name]
        if column.numeric:
            numbers = pd.to_numeric(values, errors="coerce")
            bad = values[numbers.isna() & values.notna()]
            if len(bad):
                problems.append(f"column {column.name!r} expects {column.type}, got {bad.iloc[0]!r}")
            infinite = values[np.isinf(numbers.astype("float64"))]
            if len(infinite):  # JSON has no infinity, so the online predictor never sees one either
                problems.append(f"column {column.name!r} expects a finite number, got {infinite.iloc[0]}")
            out[column.name] = numbers.astype("float64")
        elif column.kind == "string":
            out[column.name] = (
                values.astype(object)
                .where(values.notna(), None)
                .map(lambda v: v if v is None or isinstance(v, str) else str(v))
            )
        else:
            out[column.name] = values
        if column.required and values.isna().any():  # blank in the file, not a value refused above
            problems.append(f"column {column.name!r} is required but has missing values")
    if problems:
        raise SchemaMismatchError(f"{source} does not match the model's signature: " + "; ".join(problems))
    return pd.DataFrame(out, index=chunk.index)


def read_chunks(path: Path, fmt: str, rows: int, text_columns: list[str] = ()) -> Iterator[pd.DataFrame]:
    """Parquet by record batches, CSV by pandas chunks: never the whole file in memory.

    CSV `text_columns` are read as text: left to guess, pandas types each chunk on its own, and a
    code column `1, 2` in one chunk and `1, <blank>` in the next would be "1" there and "1.0" here.
    They read as ingest reads them for training (lifecycle.dataset.ingest.csv_options).
    """
    if fmt == "parquet":
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
            yield batch.to_pandas()
    else:
        yield from pd.read_csv(path, chunksize=rows, **csv_options(csv_header(path), text_columns))


def predict_frame(model, frame: pd.DataFrame) -> pd.DataFrame:
    """Predictions for conformed rows: the label or value, plus class probabilities."""
    out = pd.DataFrame({"prediction": model.predict(frame)}, index=frame.index)
    if hasattr(model, "predict_proba"):
        proba = model.predict_proba(frame)
        for i, label in enumerate(model.classes_):
            out[f"probability_{label}"] = proba[:, i]
    return out


@dataclass(frozen=True)
class ScoringResult:
    rows: int
    chunks: int
    output_uri: str
    model_uri: str  # the version scored with (models:/NAME/VERSION), whatever alias was asked for
    model_sha256: str
    # A uniform sample of the scored rows and their predictions, aligned, for the drift check.
    sample: tuple[pd.DataFrame, pd.DataFrame] | None = None


def check_output_uri(uri: str) -> None:
    """Refuses, before any scoring, an `output_uri` the predictions could not be written to."""
    try:
        fmt = file_format(uri)
    except IngestError:
        fmt = None
    if fmt != "parquet":
        raise StorageError(f"output_uri {uri!r}: predictions are written as Parquet; name a file ending in .parquet")
    check_writable(uri)


def score_file(
    model_uri: str,
    input_uri: str,
    output_path: Path,
    chunk_rows: int = 50_000,
    output_uri: str = "",
    sample_rows: int = 0,
) -> ScoringResult:
    """Scores `input_uri` chunk by chunk into a Parquet file (and copies it to `output_uri`).

    `model_uri` (models:/NAME@ALIAS or models:/NAME/VERSION) is resolved once to a version, whose
    verified files score every chunk. The file appears at `output_path` only once every row is
    scored: a failure in a later chunk leaves no partial predictions behind. With `sample_rows`,
    a uniform sample of that many scored rows (inputs and predictions) comes back as well.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    fmt = file_format(input_uri)
    if output_uri:
        check_output_uri(output_uri)
    with tempfile.TemporaryDirectory() as scratch, written_whole(output_path) as partial:
        trusted = load_registered(model_uri, scratch=Path(scratch) / "model")
        model = trusted.model
        columns = model_columns(trusted.meta.signature, trusted.version.uri)
        text_columns = [c.name for c in columns if c.kind == "string"]
        rows = chunks = 0
        writer = None
        sample = UniformSample(sample_rows) if sample_rows > 0 else None
        # Expanded once, a block at a time and capped like ingest, so a compressed bomb is refused by name.
        local = expanded(fetch_to_file(input_uri, Path(scratch) / Path(input_uri).name), input_uri)
        try:
            for chunk in read_chunks(local, fmt, chunk_rows, text_columns):
                if chunk.empty:
                    continue
                where = f"{input_uri} (rows {rows}-{rows + len(chunk) - 1})"
                conformed = conform_to_signature(chunk, columns, where)
                try:
                    scored = predict_frame(model, conformed)
                except ValueError as exc:
                    raise UnscorableRowsError(f"{where}: the model cannot score these rows: {exc}") from exc
                if sample is not None:
                    sample.add(conformed, scored)
                scored.insert(0, "row", np.arange(rows, rows + len(chunk), dtype="int64"))
                table = pa.Table.from_pandas(scored, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(partial, table.schema)
                writer.write_table(table)
                rows += len(chunk)
                chunks += 1
        except pd.errors.EmptyDataError:
            raise SchemaMismatchError(f"{input_uri} is empty: no header, no rows") from None
        finally:
            if writer is not None:
                writer.close()
        if rows == 0:
            raise SchemaMismatchError(f"{input_uri} has no rows to score")
    if output_uri:
        upload_file(output_path, output_uri)
    return ScoringResult(
        rows,
        chunks,
        output_uri or str(output_path),
        trusted.version.uri,
        trusted.sha256,
        tuple(sample.frames()) if sample is not None else None,
    )
