"""ingest and upload against a real S3 API (moto's server) on loopback."""

import hashlib

import pytest

from lifecycle.dataset.ingest import IngestError, ingest_table
from lifecycle.dataset.storage import StorageError, parse_s3_uri, upload_file
from tests.conftest import AMES_DATA


@pytest.fixture(scope="module")
def s3_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3(s3_server, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from lifecycle.dataset.storage import s3_client

    client = s3_client()
    if not client.bucket_exists("data"):
        client.make_bucket("data")
    return client


def test_ingest_from_s3(s3):
    s3.fput_object("data", "raw/ames.csv.gz", str(AMES_DATA))
    table = ingest_table("s3://data/raw/ames.csv.gz")
    assert table.frame.shape == (2930, 74)
    assert table.sha256 == hashlib.sha256(AMES_DATA.read_bytes()).hexdigest()


def test_missing_key_and_bucket_are_named(s3):
    with pytest.raises(IngestError, match=r"cannot read s3://data/raw/missing\.csv: does not exist"):
        ingest_table("s3://data/raw/missing.csv")
    with pytest.raises(IngestError, match=r"cannot read s3://nobucket/x\.csv: bucket 'nobucket' does not exist"):
        ingest_table("s3://nobucket/x.csv")


def test_unreachable_endpoint_is_named(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(
        IngestError, match=r"cannot read s3://data/x\.csv: S3 endpoint http://127\.0\.0\.1:9 unreachable"
    ):
        ingest_table("s3://data/x.csv")


def test_upload_round_trip(s3, tmp_path):
    source = tmp_path / "out.txt"
    source.write_text("hello")
    assert upload_file(source, "s3://data/out/out.txt") == "s3://data/out/out.txt"
    assert s3.get_object("data", "out/out.txt").read() == b"hello"


def test_bad_uri():
    with pytest.raises(StorageError, match="not an s3://bucket/key URI"):
        parse_s3_uri("s3://bucket-only")
