import gzip
import hashlib

import pandas as pd
import pytest

from lifecycle.ingest import IngestError, ingest_table
from tests.conftest import AMES_DATA


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
    assert frame["veneer"].tolist()[:2] == ["None", "null"] and frame["veneer"].isna().tolist() == [False, False, True, False]
    assert frame["veneer"].iloc[3] == "NA" and frame["alley"].tolist() == ["NA", "Pave", "Grvl", "nan"]
    assert frame["area"].dtype == float and frame["area"].isna().tolist() == [False, True, True, True]
