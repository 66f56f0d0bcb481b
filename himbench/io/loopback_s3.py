"""An S3-compatible server on 127.0.0.1 (moto's server mode, ``pip install "moto[server]"``), for trying object
storage without a cloud account: the tests and ``benchmarks/bench_cluster.py`` build into it.

    with loopback_s3_server() as endpoint:
        options = loopback_storage_options(endpoint)   # pass as --storage-options / storage_options=
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

__all__ = ["LOOPBACK_CREDENTIALS", "loopback_s3_server", "loopback_storage_options"]

# moto accepts any credentials; these dummy ones keep botocore from looking for real ones.
LOOPBACK_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def loopback_s3_server(timeout_s: float = 30.0) -> Iterator[str]:
    """Start moto's S3 server on a free port of 127.0.0.1 and yield its endpoint URL; stop it on exit. Raises
    RuntimeError when it does not accept connections within ``timeout_s``."""
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            env={**os.environ, **LOOPBACK_CREDENTIALS}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the moto S3 server did not start on {endpoint}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def loopback_storage_options(endpoint: str) -> dict:
    """The s3fs storage options that reach ``endpoint`` with the dummy credentials."""
    return {"key": LOOPBACK_CREDENTIALS["AWS_ACCESS_KEY_ID"], "secret": LOOPBACK_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "endpoint_url": endpoint, "client_kwargs": {"region_name": LOOPBACK_CREDENTIALS["AWS_DEFAULT_REGION"]}}
