"""Reading a raw tabular file (CSV or Parquet, local or s3://) into a data frame."""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lifecycle.storage import StorageError, fetch_to_file

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")


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


def read_table(path: Path, fmt: str, uri: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise IngestError(f"{uri} is empty (0 bytes)")
    try:
        if fmt == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path)
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


def ingest_table(uri: str) -> IngestedTable:
    """Reads `uri` (local path or s3://bucket/key) and fingerprints its bytes."""
    fmt = file_format(uri)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / Path(uri).name
        try:
            fetch_to_file(uri, local)
        except StorageError as exc:
            raise IngestError(str(exc)) from None
        frame = read_table(local, fmt, uri)
        return IngestedTable(frame=frame, source_uri=uri, sha256=sha256_of(local))
