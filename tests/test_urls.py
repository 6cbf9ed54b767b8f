"""Masking credentials in URLs: what locates a resource stays, what authenticates goes."""

from __future__ import annotations

import pytest

from lifecycle.urls import mask_credentials


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # a password holding an unencoded @: the user part runs to the last @ of the authority
        ("postgresql://u:p@ss@db", "postgresql://***@db"),
        ("postgresql://mlflow:p@ss@w0rd@db.internal:5432/mlflow", "postgresql://***@db.internal:5432/mlflow"),
        ("postgresql://u:p%40ss@db/mlflow", "postgresql://***@db/mlflow"),
        ("https://ghp_sentinelToken@github.com/o/r.git", "https://***@github.com/o/r.git"),
        ("http://:sentinel@host/x", "http://***@host/x"),
        # unencoded / ? # in a password: urlsplit would read the rest as a path
        ("mysql://u:pa/ss@db/x", "mysql://***@db/x"),
        ("http://u:p?s#s@db/x", "http://***@db/x"),
        # no host at all: what follows the colon is not a port, so it is masked
        ("http://u:sentinel", "http://u:***"),
        ("http://u:p%40ss%40db/x", "http://u:***/x"),
        # every query value, and a fragment of name=value pairs
        ("s3://b/k?X-Amz-Signature=abc&X-Amz-Credential=AKIA", "s3://b/k?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("https://h/?password=hunter2&flag", "https://h/?password=***&***"),
        ("https://h/cb#access_token=abc", "https://h/cb#access_token=***"),
        # a host given without its scheme
        ("user:secretpw@kfp.example:8888", "***@kfp.example:8888"),
        # free text: each URL in it
        ("at http://a:b@h1 and https://t@h2/x, then", "at http://***@h1 and https://***@h2/x, then"),
    ],
)
def test_credentials_are_masked(text, masked):
    assert mask_credentials(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "http://127.0.0.1:5000",
        "'http://127.0.0.1:5000'",
        "at http://mlflow:5000, retrying",
        "http://[::1]:5000/api",
        "http://localhost:8080/#/runs/details/r1",
        "sqlite:////tmp/a@b/mlflow.db",
        "s3://bucket/data@2024.csv",
        "file:///data/x@y.csv",
        "models:/ames-house-prices@champion",
        "ames@champion",
        "mail admin@example.com",
        "no url here",
        "",
    ],
)
def test_what_holds_no_credentials_is_unchanged(text):
    assert mask_credentials(text) == text


def test_masking_is_idempotent():
    once = mask_credentials("postgresql://u:p@ss@db/x?sslmode=require")
    assert mask_credentials(once) == once == "postgresql://***@db/x?sslmode=***"
