"""An S3-compatible server on 127.0.0.1 for the tests: moto's server mode, started as a subprocess on a free port.

Bind the fixtures in a test module (``s3 = s3_server_module.s3``, and ``s3_server`` likewise). ``s3_server`` (one per
session) yields the endpoint; ``s3`` makes a fresh bucket for a test and yields ``(url, storage_options)``.
"""

from __future__ import annotations

import uuid

import pytest

from himbench.io.loopback_s3 import LOOPBACK_CREDENTIALS, loopback_s3_server, loopback_storage_options

CREDENTIALS = LOOPBACK_CREDENTIALS


@pytest.fixture(scope="session")
def s3_server():
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    try:
        with loopback_s3_server() as endpoint:
            yield endpoint
    except RuntimeError as err:
        pytest.fail(str(err))


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """A new bucket: yields ``("s3://<bucket>", storage_options)``; credentials also in the environment."""
    boto3 = pytest.importorskip("boto3")

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HIMBENCH_STORAGE_CACHE", str(tmp_path / "storage-cache"))
    options = loopback_storage_options(s3_server)
    bucket = f"him-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)
    yield f"s3://{bucket}", options
