"""S3: read small artifacts (evaluation report, sample rows) by URI."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.adapters._errors import ClientError, code_of, transient_errors
from shared.errors import ArtifactError

if TYPE_CHECKING:
    from botocore.response import StreamingBody
    from mypy_boto3_s3 import S3Client

MISSING_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "404", "NotFound"})
MAX_TEXT_BYTES = 5 * 1024 * 1024


def split_uri(uri: str) -> tuple[str, str]:
    """`s3://bucket/key` -> (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in S3 URI: {uri!r}")
    return bucket, key


class S3:
    def __init__(self, client: S3Client) -> None:
        self._client = client

    def _open(self, uri: str) -> StreamingBody:
        """The object's streaming body; ArtifactError if it does not exist."""
        bucket, key = split_uri(uri)
        with transient_errors("GetObject"):
            try:
                return self._client.get_object(Bucket=bucket, Key=key)["Body"]
            except ClientError as exc:
                if code_of(exc) in MISSING_CODES:
                    raise ArtifactError(f"{uri} does not exist ({code_of(exc)})") from exc
                raise

    def read_text(self, uri: str, max_bytes: int = MAX_TEXT_BYTES) -> str:
        """A whole (small) object as UTF-8 text; ArtifactError if missing or too large."""
        body = self._open(uri)
        try:
            data = body.read(max_bytes + 1)
        finally:
            body.close()
        if len(data) > max_bytes:
            raise ArtifactError(f"{uri} is larger than {max_bytes} bytes")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ArtifactError(f"{uri} is not UTF-8 text: {exc}") from exc

    def read_lines(self, uri: str, count: int) -> list[str]:
        """The first `count` non-empty lines of an object (streamed: reads no more)."""
        body = self._open(uri)
        lines: list[str] = []
        try:
            for raw in body.iter_lines():
                line = raw.decode("utf-8").strip()
                if line:
                    lines.append(line)
                if len(lines) >= count:
                    break
        except UnicodeDecodeError as exc:
            raise ArtifactError(f"{uri} is not UTF-8 text: {exc}") from exc
        finally:
            body.close()
        return lines

    def first_object(self, uri: str, suffix: str = "") -> str | None:
        """The URI of the first object (in key order) under a prefix whose key ends with
        `suffix`; None if there is none."""
        bucket, prefix = split_uri(uri)
        token: str | None = None
        while True:
            kwargs = {"Bucket": bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            with transient_errors("ListObjectsV2"):
                page = self._client.list_objects_v2(**kwargs)  # type: ignore[arg-type]
            for item in page.get("Contents", []):
                key = item.get("Key", "")
                if key.endswith(suffix) and not key.endswith("/"):
                    return f"s3://{bucket}/{key}"
            token = page.get("NextContinuationToken")
            if not token:
                return None

    def list_keys(self, uri: str, max_keys: int = 1000) -> list[str]:
        """Up to `max_keys` object keys under a prefix, in key order (folder markers
        skipped); ArtifactError naming the bucket if it does not exist."""
        bucket, prefix = split_uri(uri)
        with transient_errors("ListObjectsV2"):
            try:
                page = self._client.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=max_keys)
            except ClientError as exc:
                if code_of(exc) == "NoSuchBucket":
                    raise ArtifactError(f"bucket {bucket!r} does not exist") from exc
                if code_of(exc) in ("AccessDenied", "403"):  # IAM: only the stack's bucket
                    raise ArtifactError(
                        f"bucket {bucket!r} does not exist or this pipeline may not read it "
                        "(AccessDenied: its role reads the stack's own bucket)"
                    ) from exc
                raise
        keys = [item.get("Key", "") for item in page.get("Contents", [])]
        return [key for key in keys if key and not key.endswith("/")]

    def read_range(self, uri: str, byte_range: str) -> bytes:
        """A ranged GET (`bytes=0-65535`, `bytes=-8`): the bytes, fewer if the object is
        shorter; ArtifactError if it does not exist."""
        bucket, key = split_uri(uri)
        with transient_errors("GetObject"):
            try:
                body = self._client.get_object(Bucket=bucket, Key=key, Range=byte_range)["Body"]
            except ClientError as exc:
                if code_of(exc) in MISSING_CODES:
                    raise ArtifactError(f"{uri} does not exist ({code_of(exc)})") from exc
                if code_of(exc) == "InvalidRange":  # an empty object
                    return b""
                raise
        try:
            return bytes(body.read())
        finally:
            body.close()
