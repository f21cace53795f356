"""Two speed-ups of the local cloud keep what they replace: the ASL parse kept per definition
(sfn.install_parse_cache) still gives each caller its own program and still rejects a
broken definition every time; a job input copied by the kernel from moto's object file
(Workspace._write_object) has the object's bytes, large or small; a job output put from a
memory map (Workspace.put_file) has the file's bytes and its MD5 as the ETag."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from moto.stepfunctions.parser.asl.parse.asl_parser import (
    AmazonStateLanguageParser,
    ASLParserException,
)

from sfn_mlops.local.cloud import _Patches
from sfn_mlops.local.sagemaker.common import Workspace
from sfn_mlops.local.sfn import install_parse_cache


def _definition(result: str) -> str:
    return json.dumps(
        {"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": result, "End": True}}}
    )


def test_a_kept_parse_gives_each_call_its_own_program() -> None:
    # GIVEN the parse cache installed
    patches = _Patches()
    install_parse_cache(patches)
    try:
        # WHEN the same definition is parsed twice, and another one once
        first, tree = AmazonStateLanguageParser.parse(_definition("a"))
        second, same_tree = AmazonStateLanguageParser.parse(_definition("a"))
        _other, other_tree = AmazonStateLanguageParser.parse(_definition("b"))
        # THEN the tree is parsed once, the programs are distinct, the other definition is its own
        assert same_tree is tree
        assert second is not first
        assert type(second) is type(first)
        assert other_tree is not tree
        # AND a broken definition is rejected at every call
        for _ in range(2):
            with pytest.raises(ASLParserException):
                AmazonStateLanguageParser.parse('{"StartAt": ')
    finally:
        patches.undo()
    assert AmazonStateLanguageParser.parse(_definition("a"))[1] is not tree  # undone


@pytest.mark.parametrize("size", [10, 6 * 1024 * 1024 + 7])  # in memory / in moto's temp file
@pytest.mark.parametrize("kernel_copy", [True, False])  # False: no copy_file_range (macOS)
def test_a_job_input_has_the_objects_bytes(
    tmp_path: Path, size: int, kernel_copy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.s3.models import FakeKey

    # GIVEN an S3 object as moto keeps it (over ~5 MB: in a temporary file)
    body = os.urandom(size)
    key = FakeKey(name="k", value=body, account_id="123456789012", region_name="us-east-1")
    assert key._value_buffer._rolled is (size > 5 * 1024 * 1024)  # the path under test
    if not kernel_copy:
        monkeypatch.delattr(os, "copy_file_range")
    # WHEN it is written into a job's input directory
    target = tmp_path / "input" / "k"
    target.parent.mkdir(parents=True)
    Workspace._write_object(key, target)
    # THEN the file has the object's bytes, and the object is unchanged
    assert target.read_bytes() == body
    assert key.value == body


@pytest.mark.parametrize("size", [10, 8 * 1024 * 1024 + 3])  # read / memory-mapped
def test_a_job_output_has_the_files_bytes_and_etag(tmp_path: Path, size: int) -> None:
    import hashlib

    import boto3
    from moto import mock_aws

    # GIVEN a job's output file
    body = os.urandom(size)
    out = tmp_path / "out.bin"
    out.write_bytes(body)
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="outputs")
        ws = Workspace(lambda: None, tmp_path, "us-east-1")
        # WHEN it is uploaded as S3 does a PutObject
        ws.put_file("outputs", "job/out.bin", out)
        # THEN the object has its bytes, size and MD5 ETag (what the Object Created event and
        # a HeadObject report)
        key = ws._s3_backend().get_object("outputs", "job/out.bin")
        assert key.value == body
        assert key.contentsize == size
        assert key.etag == f'"{hashlib.md5(body).hexdigest()}"'
