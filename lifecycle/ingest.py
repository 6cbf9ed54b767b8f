"""Reading a raw tabular file (CSV or Parquet, local or s3://) into a data frame."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lifecycle.storage import StorageError, fetch_to_file

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
# What pandas reads as missing by default: kept for number columns, where none of them can be a value.
NUMBER_NA_MARKERS = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)


class IngestError(ValueError):
    """A source that cannot be read as a table; the message names the file."""


@dataclass(frozen=True)
class IngestedTable:
    frame: pd.DataFrame
    source_uri: str
    sha256: str

    @property
    def summary(self) -> dict:
        return {
            "source_uri": self.source_uri,
            "rows": int(len(self.frame)),
            "columns": int(self.frame.shape[1]),
            "sha256": self.sha256,
        }


def file_format(uri: str) -> str:
    name = uri.lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if name.endswith(CSV_SUFFIXES):
        return "csv"
    raise IngestError(
        f"{uri} is neither CSV nor Parquet: expected a name ending in "
        f"{', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
    )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def text_columns_of(config) -> list[str]:
    """The columns a config reads as text: its categorical features, and a classifier's label."""
    names = list(config.categorical_columns)
    return names + [config.target.name] if config.task == "classification" else names


def as_text(values: pd.Series) -> pd.Series:
    """A typed column as text, None for missing; integer codes that a blank turned into floats
    (1.0) as the text they were written as ("1")."""
    if values.dtype == object:
        return values
    whole = values.dropna()
    if pd.api.types.is_float_dtype(values) and (whole == whole.round()).all():
        values = values.astype("Int64")
    return values.astype("string").astype(object).where(values.notna(), None)


def csv_header(path: Path) -> list[str]:
    return [str(name) for name in pd.read_csv(path, header=None, nrows=1, dtype=str, keep_default_na=False).iloc[0]]


def csv_options(header: list[str], text_columns: Collection[str]) -> dict:
    """`pd.read_csv` arguments that read a CSV's cells as a JSON client sends them.

    In a text column only an empty cell is missing (JSON's null): "NA", "None" or "null" there are
    levels ("None" for no veneer), which a client sends as text, and the model must see them as such
    in batch scoring too. Number columns keep pandas' missing markers.
    """
    text = set(text_columns)
    return {
        "dtype": {name: str for name in text},
        "keep_default_na": False,
        "na_values": {name: [""] if name in text else list(NUMBER_NA_MARKERS) for name in header},
    }


def _duplicates(header: list[str]) -> list[str]:
    return sorted({name for name in header if header.count(name) > 1})


def read_table(path: Path, fmt: str, uri: str, text_columns: Collection[str] = ()) -> pd.DataFrame:
    """The file as a frame; `text_columns` as text, whatever their values look like (see csv_options).

    Left to guess, pandas reads a column of codes 1, 2 with one blank as the floats 1.0, 2.0, whose
    text is "1.0": a level the model would learn and no client would send.
    """
    if path.stat().st_size == 0:
        raise IngestError(f"{uri} is empty (0 bytes)")
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
            for name in set(text_columns) & set(frame.columns):
                frame[name] = as_text(frame[name])
        else:
            header = csv_header(path)
            duplicates = _duplicates(header)
            if duplicates:  # pandas would rename the second one "name.1" and read on
                raise IngestError(f"{uri} names more than one column {', '.join(duplicates)}")
            frame = pd.read_csv(path, **csv_options(header, text_columns))
    except pd.errors.EmptyDataError:
        raise IngestError(f"{uri} is empty: no header and no rows") from None
    except (UnicodeDecodeError, pd.errors.ParserError, OSError, ValueError) as exc:
        kind = "Parquet" if fmt == "parquet" else "CSV"
        raise IngestError(f"{uri} could not be read as {kind}: {exc}") from None
    if frame.shape[1] == 0:
        raise IngestError(f"{uri} has no columns")
    if len(frame) == 0:
        raise IngestError(f"{uri} has a header but no data rows")
    unnamed = [str(c) for c in frame.columns if str(c).startswith("Unnamed: ")]
    if unnamed:
        raise IngestError(f"{uri} has columns without a header name: {', '.join(unnamed)}")
    return frame


def ingest_table(uri: str, text_columns: Collection[str] = ()) -> IngestedTable:
    """Reads `uri` (local path or s3://bucket/key), `text_columns` as text, and fingerprints its bytes."""
    fmt = file_format(uri)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / Path(uri).name
        try:
            fetch_to_file(uri, local)
        except StorageError as exc:
            raise IngestError(str(exc)) from None
        frame = read_table(local, fmt, uri, text_columns)
        return IngestedTable(frame=frame, source_uri=uri, sha256=sha256_of(local))
