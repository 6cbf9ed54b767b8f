import bz2
import gzip
import hashlib
import lzma
import os
import re
import subprocess
import sys
import zipfile

import pandas as pd
import pytest

from lifecycle.dataset.ingest import (
    IngestError,
    expanded,
    ingest_table,
    max_decompressed_bytes,
)
from tests.conftest import AMES_DATA, ROOT


def test_reads_gzipped_csv_and_fingerprints_it():
    table = ingest_table(str(AMES_DATA))
    assert table.frame.shape == (2930, 74)
    assert table.sha256 == hashlib.sha256(AMES_DATA.read_bytes()).hexdigest()
    assert table.summary == {"source_uri": str(AMES_DATA), "rows": 2930, "columns": 74, "sha256": table.sha256}


def test_reads_parquet(tmp_path, telco_raw):
    path = tmp_path / "churn.parquet"
    telco_raw.to_parquet(path)
    table = ingest_table(str(path))
    pd.testing.assert_frame_equal(table.frame, telco_raw)


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("empty.csv", b"", r"empty\.csv is empty \(0 bytes\)"),
        ("header.csv", b"a,b,c\n", r"header\.csv has a header but no data rows"),
        ("blank.csv", b"\n\n", r"blank\.csv is empty: no header and no rows"),
        ("image.png", b"\x89PNG\r\n", r"image\.png is neither CSV nor Parquet"),
        ("fake.parquet", b"not parquet at all", r"fake\.parquet could not be read as Parquet"),
        ("binary.csv", gzip.compress(b"x") + b"\xff\xfe\x00", r"binary\.csv could not be read as CSV"),
    ],
)
def test_unreadable_files_are_named(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestError, match=message):
        ingest_table(str(path))


def test_missing_path_is_named(tmp_path):
    with pytest.raises(IngestError, match=f"file not found: {tmp_path}/nowhere.csv"):
        ingest_table(str(tmp_path / "nowhere.csv"))


def test_a_repeated_column_name_is_refused_not_renamed(tmp_path):
    path = tmp_path / "dupes.csv"
    path.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(IngestError, match=r"dupes\.csv names more than one column a"):
        ingest_table(str(path))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_codes_with_a_blank_stay_the_text_they_were(tmp_path, fmt):
    """Left to guess, a blank turns codes 1, 2 into 1.0, 2.0, whose text is a level nobody sends."""
    frame = pd.DataFrame({"zone": [1.0, 2.0, None, 1.0], "area": [1.5, 2.0, 3.0, None]})  # as a reader saw it
    path = tmp_path / f"codes.{fmt}"
    if fmt == "csv":
        path.write_text("zone,area\n1,1.5\n2,2.0\n,3.0\n1,\n")
    else:
        frame.to_parquet(path)
    table = ingest_table(str(path), text_columns=["zone"])
    assert table.frame["zone"].tolist()[:2] == ["1", "2"] and table.frame["zone"].isna().iloc[2]
    assert table.frame["area"].dtype == float


MISSING_MARKERS_CSV = 'veneer,alley,area\nNone,NA,1.5\nnull,Pave,NA\n,Grvl,\n"NA",nan,N/A\n'


def test_text_columns_keep_what_pandas_would_read_as_missing(tmp_path):
    """In a text column only a blank is missing, as only null is in JSON: "None" and "NA" are levels."""
    path = tmp_path / "markers.csv"
    path.write_text(MISSING_MARKERS_CSV)
    frame = ingest_table(str(path), text_columns=["veneer", "alley"]).frame
    assert frame["veneer"].tolist()[:2] == ["None", "null"] and frame["veneer"].isna().tolist() == [
        False,
        False,
        True,
        False,
    ]
    assert frame["veneer"].iloc[3] == "NA" and frame["alley"].tolist() == ["NA", "Pave", "Grvl", "nan"]
    assert frame["area"].dtype == float and frame["area"].isna().tolist() == [False, True, True, True]


# ---- decompressed size ---------------------------------------------------------------------------

MiB = 1 << 20


def zeros_bomb(path, size: int = 100 * MiB):
    """`size` bytes of zeros, compressed a block at a time (about 100 KB of gzip for 100 MB)."""
    opener = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}[path.suffix]
    block = bytes(MiB)
    with opener(path, "wb") as out:
        for _ in range(size // MiB):
            out.write(block)
    return path


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz"])
def test_a_decompression_bomb_is_refused_naming_the_file_and_the_limit(tmp_path, suffix):
    bomb = zeros_bomb(tmp_path / f"bomb.csv{suffix}")
    assert bomb.stat().st_size < 200_000
    with pytest.raises(IngestError) as refused:
        ingest_table(str(bomb), max_decompressed=10 * MiB)
    assert str(refused.value) == (
        f"{bomb} expands to more than 10,485,760 bytes, the limit for decompressed input "
        "($INGEST_MAX_DECOMPRESSED_BYTES, default 2,147,483,648); not read"
    )
    with pytest.raises(IngestError):
        expanded(bomb, "s3://bucket/bomb.csv", 10 * MiB)
    assert [p.name for p in tmp_path.iterdir()] == [bomb.name]  # the partial expansion is gone


GROWTH = """
import resource, sys
from lifecycle.dataset.ingest import IngestError, ingest_table
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    ingest_table(sys.argv[1])
except IngestError as exc:
    print(exc, file=sys.stderr)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_bomb_is_refused_before_it_fills_memory(tmp_path):
    """In a process of its own, so that its peak resident memory is the refusal's alone."""
    bomb = zeros_bomb(tmp_path / "bomb.csv.gz", 200 * MiB)
    done = subprocess.run(
        [sys.executable, "-c", GROWTH, str(bomb)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        env={**os.environ, "INGEST_MAX_DECOMPRESSED_BYTES": str(10 * MiB)},
    )
    assert "expands to more than 10,485,760 bytes" in done.stderr, done.stderr[-2000:]
    assert int(done.stdout) < 30  # MiB; read whole, the 200 MB line grew it by over 200


def test_a_zip_bomb_is_refused_and_a_zip_holds_one_file(tmp_path):
    bomb = tmp_path / "bomb.csv.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("bomb.csv", "w") as member:
        for _ in range(50):
            member.write(bytes(MiB))
    with pytest.raises(IngestError, match=r"bomb\.csv\.zip expands to more than 1,048,576 bytes"):
        ingest_table(str(bomb), max_decompressed=MiB)
    two = tmp_path / "two.csv.zip"
    with zipfile.ZipFile(two, "w") as archive:
        archive.writestr("a.csv", "a\n1\n")
        archive.writestr("b.csv", "b\n2\n")
    with pytest.raises(
        IngestError, match=r"two\.csv\.zip could not be decompressed as \.zip: the archive holds 2 files"
    ):
        ingest_table(str(two))


def test_the_limit_comes_from_the_environment(tmp_path, monkeypatch):
    bomb = zeros_bomb(tmp_path / "bomb.csv.gz", 4 * MiB)
    monkeypatch.setenv("INGEST_MAX_DECOMPRESSED_BYTES", str(2 * MiB))
    with pytest.raises(IngestError, match=r"bomb\.csv\.gz expands to more than 2,097,152 bytes"):
        ingest_table(str(bomb))
    for bad in ("0", "-5", "lots", "1.5"):
        monkeypatch.setenv("INGEST_MAX_DECOMPRESSED_BYTES", bad)
        with pytest.raises(
            IngestError,
            match=rf"\$INGEST_MAX_DECOMPRESSED_BYTES must be a positive whole number of bytes, not '{re.escape(bad)}'",
        ):
            ingest_table(str(bomb))
    monkeypatch.delenv("INGEST_MAX_DECOMPRESSED_BYTES")
    assert max_decompressed_bytes() == 2 * 1024**3


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zip"])
def test_compressed_tables_under_the_limit_read_as_before(tmp_path, telco_raw, suffix):
    path = tmp_path / f"churn.csv{suffix}"
    telco_raw.head(200).to_csv(path, index=False)  # pandas compresses by the name
    size = len(telco_raw.head(200).to_csv(index=False).encode())
    table = ingest_table(str(path), max_decompressed=size)  # exactly at the limit
    assert table.frame.shape == (200, telco_raw.shape[1])
    assert table.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()  # of the bytes as stored
    with pytest.raises(IngestError, match="expands to more than"):
        ingest_table(str(path), max_decompressed=size - 1)


def test_a_truncated_gzip_is_named(tmp_path):
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n1,2\n" * 1000)[:-20])
    with pytest.raises(IngestError, match=r"cut\.csv\.gz could not be decompressed as \.gz"):
        ingest_table(str(path))
