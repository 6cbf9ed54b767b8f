"""Reading a raw tabular file (CSV or Parquet, local or s3://) into a data frame.

A compressed CSV (.gz, .bz2, .xz, .zip) is expanded into the step's scratch folder first, a block
at a time, and refused as soon as it passes a size limit: a few kilobytes of gzip can expand to
gigabytes and would fill the step's memory or disk before pandas reported anything.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import lzma
import os
import tempfile
import zipfile
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lifecycle.dataset.storage import StorageError, fetch_to_file

CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".txt")
PARQUET_SUFFIXES = (".parquet", ".pq")
# What pandas reads as missing by default: kept for number columns, where none of them can be a value.
NUMBER_NA_MARKERS = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)


# The limit on a compressed input's expanded size, in bytes; the variable overrides the default.
# 2 GiB: training holds the whole table in memory, where pandas needs several times the CSV's
# size, so an honest table this large is already past what the step can hold (larger data belongs
# in Parquet); and no real table compresses a thousandfold, so only a bomb or a mistake reaches it.
# Not a ratio: a CSV of repeated categories honestly compresses 20-50x.
MAX_DECOMPRESSED_ENV = "INGEST_MAX_DECOMPRESSED_BYTES"
DEFAULT_MAX_DECOMPRESSED_BYTES = 2 * 1024**3
BLOCK = 1 << 20  # bytes expanded per read: what memory holds of the stream at once


class IngestError(ValueError):
    """A source that cannot be read as a table; the message names the file."""


def max_decompressed_bytes(environ: dict[str, str] | None = None) -> int:
    """The limit from $INGEST_MAX_DECOMPRESSED_BYTES, else the default; a value that is not a
    positive whole number of bytes is refused (no limit is not an option)."""
    text = (os.environ if environ is None else environ).get(MAX_DECOMPRESSED_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_DECOMPRESSED_BYTES
    try:
        limit = int(text.replace("_", ""))
    except ValueError:
        limit = 0
    if limit < 1:
        raise IngestError(f"${MAX_DECOMPRESSED_ENV} must be a positive whole number of bytes, not {text!r}")
    return limit


def _only_member(path: Path):
    """The one file in a zip archive, as pandas reads it; another count is refused."""
    archive = zipfile.ZipFile(path)
    names = [i.filename for i in archive.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
    if len(names) != 1:
        archive.close()
        raise zipfile.BadZipFile(f"the archive holds {len(names)} files; one is read")
    return archive.open(names[0])


DECOMPRESSORS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".zip": _only_member}


def expanded(path: Path, uri: str, limit: int | None = None) -> Path:
    """`path` itself if it is not compressed; else its content, expanded beside it (data.csv.gz ->
    data.csv) and refused, naming the file and the limit, as soon as it passes `limit` bytes
    (default: max_decompressed_bytes()). Nothing past the limit is held or written."""
    opener = DECOMPRESSORS.get(path.suffix.lower())
    if opener is None:
        return path
    limit = max_decompressed_bytes() if limit is None else limit
    target = path.with_name(path.stem)
    written = 0
    try:
        with opener(path) as source, target.open("wb") as out:
            while block := source.read(BLOCK):
                written += len(block)
                if written > limit:
                    raise IngestError(
                        f"{uri} expands to more than {limit:,} bytes, the limit for decompressed input "
                        f"(${MAX_DECOMPRESSED_ENV}, default {DEFAULT_MAX_DECOMPRESSED_BYTES:,}); not read"
                    )
                out.write(block)
    except IngestError:
        target.unlink(missing_ok=True)
        raise
    except (OSError, EOFError, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as exc:
        target.unlink(missing_ok=True)
        raise IngestError(f"{uri} could not be decompressed as {path.suffix.lower()}: {exc}") from None
    return target


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
        f"{uri} is neither CSV nor Parquet: expected a name ending in {', '.join(CSV_SUFFIXES + PARQUET_SUFFIXES)}"
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


def ingest_table(uri: str, text_columns: Collection[str] = (), max_decompressed: int | None = None) -> IngestedTable:
    """Reads `uri` (local path or s3://bucket/key), `text_columns` as text, and fingerprints its bytes.

    A compressed CSV may expand to at most `max_decompressed` bytes (default: max_decompressed_bytes()).
    """
    fmt = file_format(uri)
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(scratch) / Path(uri).name
        try:
            fetch_to_file(uri, local)
        except StorageError as exc:
            raise IngestError(str(exc)) from None
        plain = expanded(local, uri, max_decompressed) if fmt == "csv" else local
        frame = read_table(plain, fmt, uri, text_columns)
        return IngestedTable(frame=frame, source_uri=uri, sha256=sha256_of(local))
