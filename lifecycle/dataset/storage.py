"""Local paths and s3:// URIs behind one interface, so steps do not care where data lives.

S3 goes through the `minio` client, which speaks to any S3 API (the cluster's SeaweedFS, MinIO,
AWS). Endpoint and credentials come from the environment, as the cluster injects them from a Secret:
`AWS_ENDPOINT_URL` (or `MLFLOW_S3_ENDPOINT_URL`), `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse


class StorageError(RuntimeError):
    """A file or object that cannot be read or written; the message names the URI."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> S3Location:
    parsed = urlparse(uri)
    key = parsed.path.lstrip("/")
    if parsed.scheme != "s3" or not parsed.netloc or not key:
        raise StorageError(f"{uri!r} is not an s3://bucket/key URI")
    return S3Location(parsed.netloc, key)


def is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def s3_endpoint() -> str:
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("MLFLOW_S3_ENDPOINT_URL")
    if not endpoint:
        raise StorageError("no S3 endpoint configured: set AWS_ENDPOINT_URL (or MLFLOW_S3_ENDPOINT_URL)")
    return endpoint


def s3_client():
    from minio import Minio

    endpoint = urlparse(s3_endpoint())
    return Minio(
        endpoint.netloc,
        access_key=os.environ.get("AWS_ACCESS_KEY_ID"),
        secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY"),
        secure=endpoint.scheme == "https",
        region=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"),
    )


def _bucket_missing(client, bucket: str) -> bool:
    try:
        return not client.bucket_exists(bucket)
    except Exception:  # the original failure is the one to report
        return False


def _s3_failure(client, action: str, location: S3Location, exc: Exception) -> StorageError:
    code = getattr(exc, "code", None)
    if code in ("NoSuchKey", "NoSuchBucket", "ResourceNotFound"):
        # A HEAD request's 404 has no body, so a missing bucket looks like a missing key.
        missing_bucket = code == "NoSuchBucket" or _bucket_missing(client, location.bucket)
        reason = f"bucket {location.bucket!r} does not exist" if missing_bucket else "does not exist"
    elif code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        reason = f"access denied by {s3_endpoint()} for bucket {location.bucket!r}"
    elif code:
        reason = f"{code}"
    else:
        reason = f"S3 endpoint {s3_endpoint()} unreachable ({type(exc).__name__})"
    return StorageError(f"cannot {action} {location.uri}: {reason}")


def fetch_to_file(uri: str, destination: Path) -> Path:
    """Makes the file at `uri` available at `destination` (a copy for local paths)."""
    if is_s3(uri):
        location = parse_s3_uri(uri)
        client = s3_client()
        try:
            client.fget_object(location.bucket, location.key, str(destination))
        except Exception as exc:  # minio raises S3Error or urllib3 errors; both become one message
            raise _s3_failure(client, "read", location, exc) from None
        return destination
    source = Path(uri.removeprefix("file://"))
    if not source.exists():
        raise StorageError(f"file not found: {source}")
    if not source.is_file():
        raise StorageError(f"{source} is not a file")
    shutil.copyfile(source, destination)
    return destination


def upload_file(source: Path, uri: str) -> str:
    """Writes a local file to `uri` (s3:// or a local path) and returns the URI."""
    if is_s3(uri):
        location = parse_s3_uri(uri)
        client = s3_client()
        try:
            client.fput_object(location.bucket, location.key, str(source))
        except Exception as exc:
            raise _s3_failure(client, "write", location, exc) from None
        return uri
    target = Path(uri.removeprefix("file://"))
    check_writable(uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with written_whole(target) as partial:
            shutil.copyfile(source, partial)
    except OSError as exc:
        raise StorageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return str(target)


@contextmanager
def written_whole(target: Path) -> Iterator[Path]:
    """A path beside `target` to write to, renamed over `target` when the block succeeds and
    removed when it fails: nobody reads a half-written file, and a previous one stays whole."""
    partial = target.with_name(target.name + ".partial")
    try:
        yield partial
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def check_writable(uri: str) -> None:
    """Refuses a URI nothing can be written to, naming why: a malformed s3:// URI, a local path
    that is a folder or lies under a file, or a folder this process may not write in."""
    if is_s3(uri):
        parse_s3_uri(uri)
        return
    target = Path(uri.removeprefix("file://"))
    if target.is_dir():
        raise StorageError(f"cannot write {target}: it is a folder; name a file")
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise StorageError(f"cannot write {target}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK):
        raise StorageError(f"cannot write {target}: no permission to write in {ancestor}")
