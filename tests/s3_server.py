"""An S3-compatible server on 127.0.0.1 for the tests: moto's server mode, started as a subprocess on a free port.

Bind the fixtures in a test module (``s3 = s3_server_module.s3``, and ``s3_server`` likewise). ``s3_server`` (one per
session) yields the endpoint; ``s3`` makes a fresh bucket for a test and yields ``(url, storage_options)``.
:func:`put_sources` puts a few real cut-outs and backgrounds there (and in a local mirror); :func:`tables` reads a
build's shards for comparison.
"""

from __future__ import annotations

import uuid
from pathlib import Path

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


def put_sources(remote, realdata: Path, local: Path, count: int = 3) -> None:
    """A few P3M photo + alpha pairs as ``p3m`` and their photos as ``bgs``, both at ``remote`` and under ``local``."""
    demo = realdata / "P3M" / "demo" / "imgs"
    for path in sorted((demo / "original").glob("*.jpg"))[:count]:
        for rel in (f"p3m/original/{path.name}", f"p3m/alpha/{path.stem}.png", f"bgs/{path.name}"):
            source = demo / ("alpha" if "/alpha/" in rel else "original") / rel.rsplit("/", 1)[1]
            (local / rel).parent.mkdir(parents=True, exist_ok=True)
            (local / rel).write_bytes(source.read_bytes())
            remote.fs.pipe_file(remote.path(*rel.split("/")), source.read_bytes())


def tables(folder: Path) -> dict:
    """Every shard's table (every column, every value), without the schema metadata (the fingerprint, which hashes
    the config, and so the source names)."""
    import pyarrow.parquet as pq

    return {p.name: pq.read_table(p).replace_schema_metadata(None) for p in sorted((folder / "data").glob("*.parquet"))}
