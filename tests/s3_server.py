"""An S3-compatible server on 127.0.0.1 for the tests: moto's server mode, started as a subprocess on a free port.

Bind the fixtures in a test module (``s3 = s3_server_module.s3``, and ``s3_server`` likewise). ``s3_server`` (one per
session) yields the endpoint; ``s3`` makes a fresh bucket for a test and yields ``(url, storage_options)``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")
    port = _free_port()
    env = {**os.environ, **CREDENTIALS}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start on {endpoint}")
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def s3(s3_server, monkeypatch, tmp_path):
    """A new bucket: yields ``("s3://<bucket>", storage_options)``; credentials also in the environment."""
    boto3 = pytest.importorskip("boto3")

    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HIMBENCH_STORAGE_CACHE", str(tmp_path / "storage-cache"))
    options = {"key": "testing", "secret": "testing", "endpoint_url": s3_server,
               "client_kwargs": {"region_name": "us-east-1"}}
    bucket = f"him-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1", aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    client.create_bucket(Bucket=bucket)
    yield f"s3://{bucket}", options
