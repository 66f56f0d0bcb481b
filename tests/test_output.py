"""himbench.synthesis.output: the build lock of a local folder under a takeover race, and a takeover claim left by
a build that died mid-takeover."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from himbench.io import InputError
from himbench.io.storage import Location, lease_lock
from himbench.synthesis import output
from himbench.synthesis.output import LOCK_FILE, build_lock


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_two_builds_taking_over_one_dead_lock_do_not_both_hold_it(tmp_path, monkeypatch):
    # B finds the lock of a dead build; before B acts on it, A takes it over and holds it. B must be refused, not
    # delete A's fresh lock and hold it too.
    import socket

    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    real_holder = output._lock_holder
    stack = contextlib.ExitStack()
    held: list = []

    def holder_then_let_a_in(*args):
        found = real_holder(*args)
        if not held:
            monkeypatch.setattr(output, "_lock_holder", real_holder)
            held.append(stack.enter_context(build_lock(tmp_path)))  # A, while B hesitates
        return found

    monkeypatch.setattr(output, "_lock_holder", holder_then_let_a_in)
    with stack:
        with pytest.raises(InputError, match="another build .* is writing to this folder"):
            with build_lock(tmp_path):  # B
                pass
        assert held and json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()  # A still holds it
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # A released; no claim left


def test_a_claim_left_by_a_dead_taker_expires():
    location = Location.parse(f"memory://t-{uuid.uuid4().hex[:10]}/him")
    location.put_bytes(json.dumps({"owner": "dead", "expires": time.time() - 5}).encode(), "lock")
    claim = f"lock.takeover-{hashlib.sha256(location.read_bytes('lock')).hexdigest()[:16]}"
    location.create(json.dumps({"expires": time.time() + 300}).encode(), claim)  # a taker is at work
    with pytest.raises(InputError, match="could not take the build lock"):
        with lease_lock(location, "lock", lease_s=300):
            pass
    location.put_bytes(json.dumps({"expires": time.time() - 1}).encode(), claim)  # ... and died long ago
    with lease_lock(location, "lock", lease_s=300) as owner:  # the dead claim is removed, the lock taken over
        assert json.loads(location.read_bytes("lock"))["owner"] == owner["owner"] and not location.exists(claim)
    assert location.list() == []


@pytest.mark.parametrize("where", ["memory", "local"])
def test_a_shard_claiming_a_huge_footer_is_not_read(tmp_path, monkeypatch, where):
    # A file in the output folder named like a shard whose last bytes claim a 17 MiB footer: resume and clean-up
    # read footers, and must refuse this one from its last 8 bytes instead of reading (or parsing) 17 MiB.
    from fsspec.implementations.memory import MemoryFileSystem

    location = (Location.parse(f"memory://t-{uuid.uuid4().hex[:10]}/him") if where == "memory"
                else Location.parse(tmp_path / "out"))
    footer = 17 << 20
    location.put_bytes(b"PAR1" + b"\0" * (footer + 16) + footer.to_bytes(4, "little") + b"PAR1", "data",
                       "test-00000-of-00001.parquet")
    read, parsed = [], []
    real_open = MemoryFileSystem.open

    def counting_open(self, path, mode="rb", **kwargs):
        handle = real_open(self, path, mode, **kwargs)
        real = handle.read
        handle.read = lambda *args: read.append(len(data := real(*args))) or data
        return handle

    monkeypatch.setattr(MemoryFileSystem, "open", counting_open)
    monkeypatch.setattr(output, "read_shard_metadata", lambda path: parsed.append(path))
    with pytest.raises(InputError, match="footer of at most") as err:
        output.read_footer(location, "test-00000-of-00001.parquet")
    assert str(err.value.source).endswith("test-00000-of-00001.parquet")
    assert sum(read) < 1 << 16 and not parsed
