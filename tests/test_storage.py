"""himbench.io.storage on memory:// (fast, in-process) and local folders: URLs, storage options, atomic puts,
create-if-absent, the lock's lease, and staging a remote folder into the cache."""

from __future__ import annotations

import contextlib
import json
import pickle
import time
import uuid

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from himbench.io import InputError
from himbench.io.storage import Location, is_url, lease_lock, parse_storage_options, stage


@pytest.fixture
def mem() -> Location:
    return Location.parse(f"memory://t-{uuid.uuid4().hex[:10]}/him")


def test_urls_and_local_paths(tmp_path):
    assert is_url("s3://bucket/x") and is_url("memory://a") and is_url("gs://b")
    assert not is_url("data/him") and not is_url(tmp_path) and not is_url("file:///tmp/x")
    assert Location.parse("file:///tmp/x").is_local and Location.parse("file:///tmp/x").url == "/tmp/x"
    assert Location.parse("s3://bucket/prefix/").url == "s3://bucket/prefix"
    location = Location.parse("s3://bucket/p", {"anon": True})
    assert pickle.loads(pickle.dumps(location)) == location and location.options == {"anon": True}


@pytest.mark.parametrize("text, problem", [
    ("{", "is not valid JSON"), ("[]", "must be a JSON object"), ('"x"', "must be a JSON object"),
])
def test_storage_options_must_be_a_json_object(text, problem):
    with pytest.raises(InputError, match=problem) as err:
        parse_storage_options(text)
    assert err.value.source == "--storage-options"
    assert parse_storage_options(None) == {} and parse_storage_options('{"anon": true}') == {"anon": True}


def test_names_are_never_paths(mem):
    for bad in ("../x", "a/b", "..", ""):
        with pytest.raises(InputError, match="plain file name"):
            mem.path("data", bad)
    assert mem.path("data", "x.parquet").endswith("/him/data/x.parquet")


def test_put_read_list_info_delete(mem, tmp_path):
    local = tmp_path / "f.bin"
    local.write_bytes(b"abc")
    mem.put_file(local, "data", "f.bin")
    mem.put_bytes(b"{}", "top.json")
    assert mem.read_bytes("data", "f.bin") == b"abc" and mem.list("data") == ["f.bin"] and mem.list() == ["top.json"]
    assert mem.list_dirs() == ["data"] and mem.info("data", "f.bin")["size"] == 3
    with pytest.raises(InputError, match="over the 2-byte limit"):
        mem.read_bytes("data", "f.bin", max_bytes=2)
    mem.delete("data", "f.bin")
    mem.delete("data", "absent")  # nothing to do
    assert not mem.exists("data", "f.bin") and mem.list("nothing") == []


def test_local_put_is_a_rename_of_a_finished_file(tmp_path):
    location = Location.parse(tmp_path / "out")
    source = tmp_path / "src"
    source.write_bytes(b"x" * 10)
    location.put_file(source, "data", "s.parquet")
    assert (tmp_path / "out" / "data" / "s.parquet").read_bytes() == b"x" * 10
    assert [p.name for p in (tmp_path / "out" / "data").iterdir()] == ["s.parquet"]  # no temp left


def test_create_only_if_absent(mem, tmp_path):
    assert mem.create(b"1", "lock") and not mem.create(b"2", "lock") and mem.read_bytes("lock") == b"1"
    local = Location.parse(tmp_path)
    assert local.create(b"1", "lock") and not local.create(b"2", "lock")


class _NoCreateFS(MemoryFileSystem):
    protocol = ("nocreate",)


def test_a_store_without_create_if_absent_is_refused():
    fsspec.register_implementation("nocreate", _NoCreateFS, clobber=True)
    location = Location.parse("nocreate://b/him")
    with pytest.raises(InputError, match="cannot create an object only if it is absent"):
        location.create(b"x", "lock")
    with pytest.raises(InputError, match="build lock cannot be held"), lease_lock(location, "lock"):
        pass


def test_lease_lock_holds_renews_releases_and_takes_over(mem):
    with lease_lock(mem, "lock", lease_s=0.3) as owner:
        first = json.loads(mem.read_bytes("lock"))
        assert first["owner"] == owner["owner"]
        with pytest.raises(InputError, match="lease valid"), lease_lock(mem, "lock"):
            pass
        time.sleep(0.45)  # renewed every lease_s / 3: still live past the first expiry
        assert json.loads(mem.read_bytes("lock"))["expires"] > first["expires"]
    assert not mem.exists("lock")
    mem.put_bytes(json.dumps({"owner": "dead", "expires": time.time() - 5}).encode(), "lock")
    with lease_lock(mem, "lock") as owner:
        assert json.loads(mem.read_bytes("lock"))["owner"] == owner["owner"]
    mem.put_bytes(b"garbage", "lock")  # unreadable: a crash mid-write of an older format; taken over
    with lease_lock(mem, "lock"):
        pass


def test_stage_copies_checks_and_refreshes(mem, tmp_path, monkeypatch):
    mem.put_bytes(b"a" * 5, "data", "x.parquet")
    mem.put_bytes(b"{}", "build_config.json")
    local = stage(mem.url, cache_dir=tmp_path / "cache")
    assert local.name == "him" and (local / "data" / "x.parquet").read_bytes() == b"a" * 5
    assert local.is_relative_to(tmp_path / "cache")
    mem.delete("build_config.json")
    mem.put_bytes(b"b" * 6, "data", "x.parquet")
    again = stage(mem.url, cache_dir=tmp_path / "cache")
    assert (again / "data" / "x.parquet").read_bytes() == b"b" * 6 and not (again / "build_config.json").exists()
    monkeypatch.setenv("HIMBENCH_MAX_STAGE_BYTES", "4")
    with pytest.raises(InputError, match="staging limit"):
        stage(mem.url, cache_dir=tmp_path / "cache2")
    assert not (tmp_path / "cache2").exists()  # checked before anything is written
    with pytest.raises(InputError, match="holds no files"):
        stage(mem.url + "-empty", cache_dir=tmp_path / "cache3")
    assert stage(tmp_path) == tmp_path  # a local folder is read where it is


def test_stage_refuses_names_that_are_not_plain(tmp_path):
    fs = fsspec.filesystem("memory")
    root = f"/t-{uuid.uuid4().hex[:10]}"
    fs.pipe_file(f"{root}/ok/a\\b.png", b"x")
    with pytest.raises(InputError, match="path separator"):
        stage(f"memory://{root}/ok", cache_dir=tmp_path / "c")
    assert not any((tmp_path / "c").rglob("*.png")) if (tmp_path / "c").exists() else True


def test_build_to_memory_store_resumes(mem):
    from himbench.build_config import BuildConfig
    from himbench.synthesis.build import build_dataset

    config = BuildConfig(splits={"test": 2}, width=64, height=96, seed=3, images_per_shard=1)
    report = build_dataset(config, mem.url, workers=1, progress=False)
    assert report.to_dict()["num_shards"] == 2 and mem.list("data") == [
        "test-00000-of-00002.parquet", "test-00001-of-00002.parquet"]
    assert json.loads(mem.read_bytes("build_report.json"))["out_dir"] == mem.url
    again = build_dataset(config, mem.url, workers=1, progress=False)
    assert again.to_dict()["resumed_shards"] == 2
    with pytest.raises(InputError, match="--workers 1"):
        build_dataset(config, mem.url, workers=2, progress=False)


def test_export_him2k_reads_a_url(mem, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from himbench.build_config import BuildConfig
    from himbench.cli.export_him2k import command as export_command
    from himbench.synthesis.build import build_dataset

    monkeypatch.setenv("HIMBENCH_STORAGE_CACHE", str(tmp_path / "cache"))
    build_dataset(BuildConfig(splits={"test": 2}, width=64, height=96, seed=4), mem.url, workers=1, progress=False)
    result = CliRunner().invoke(export_command, [mem.url, str(tmp_path / "him2k"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "him2k" / "images" / "test").iterdir())) == 2


def test_bench_never_records_storage_options():
    from himbench.cli.bench import command as bench_command
    from himbench.cli.bench import command_line

    ctx = bench_command.make_context("bench", ["-m", "mask-cf", "--data", "s3://b/him", "--storage-options",
                                               '{"secret": "hunter2"}'])
    assert ctx.params["storage_options"] == {"secret": "hunter2"}
    line = command_line(ctx)
    assert "s3://b/him" in line and "hunter2" not in line and "--storage-options" not in line


def test_two_builds_taking_over_one_stale_lease_do_not_both_hold_it(mem, monkeypatch):
    # B reads the expired lease; before B acts on it, A takes it over and holds the lock. B must then be refused,
    # not delete A's fresh lock and take it too.
    stale = json.dumps({"owner": "dead", "host": "h", "pid": 1, "expires": time.time() - 5}).encode()
    mem.put_bytes(stale, "lock")
    real_read = Location.read_bytes
    stack = contextlib.ExitStack()
    held: list[dict] = []

    def read_then_let_a_in(self, *names, **kwargs):
        data = real_read(self, *names, **kwargs)
        if names == ("lock",) and not held and data == stale:
            monkeypatch.setattr(Location, "read_bytes", real_read)
            held.append(stack.enter_context(lease_lock(mem, "lock", lease_s=300)))  # A, while B hesitates
        return data

    monkeypatch.setattr(Location, "read_bytes", read_then_let_a_in)
    with stack:
        with pytest.raises(InputError, match="another build .* holds"):
            with lease_lock(mem, "lock", lease_s=300):  # B
                pass
        assert held and json.loads(mem.read_bytes("lock"))["owner"] == held[0]["owner"]  # A still holds it
    assert not mem.exists("lock") and mem.list() == []  # A released; no claim object left


def test_stage_reads_no_more_than_the_listed_size(mem, tmp_path, monkeypatch):
    mem.put_bytes(b"x" * 3_000_000, "big.png")
    real_find, real_open = MemoryFileSystem.find, MemoryFileSystem.open
    read = []

    def lying_find(self, path, **kwargs):  # a hostile listing: the object is far larger than it says
        found = real_find(self, path, **kwargs)
        return {k: {**v, "size": 3} for k, v in found.items()}

    def counting_open(self, path, mode="rb", **kwargs):
        handle = real_open(self, path, mode, **kwargs)
        real = handle.read

        def read_counted(*args):
            data = real(*args)
            read.append(len(data))
            return data

        handle.read = read_counted
        return handle

    monkeypatch.setattr(MemoryFileSystem, "find", lying_find)
    monkeypatch.setattr(MemoryFileSystem, "open", counting_open)
    with pytest.raises(InputError, match="changed while it was being copied") as err:
        stage(mem.url, cache_dir=tmp_path / "c")
    assert err.value.source == f"{mem.url}/big.png"
    assert sum(read) <= 4  # the listed size and one byte more, never the whole object
    assert not any(p.is_file() for p in (tmp_path / "c").rglob("*.png"))


@pytest.mark.parametrize("where", ["memory", "local"])
def test_overwrite_never_deletes_a_shard_named_file_himbench_did_not_write(mem, tmp_path, where):
    # Someone's Parquet files named as Hugging Face names shards: --overwrite must not delete one (nor mix it into
    # the build's splits); it is refused naming the file, before anything is written.
    from himbench.build_config import BuildConfig
    from himbench.synthesis.build import build_dataset

    location = mem if where == "memory" else Location.parse(tmp_path / "out")
    location.put_bytes(b"PAR1 their validation split", "data", "validation-00000-of-00001.parquet")
    config = BuildConfig(splits={"test": 1}, width=64, height=96, seed=3)
    with pytest.raises(InputError, match="named like a shard but no himbench build wrote it") as err:
        build_dataset(config, location.url, workers=1, overwrite=True, progress=False)
    assert err.value.source == location.url_of("data", "validation-00000-of-00001.parquet")
    assert location.read_bytes("data", "validation-00000-of-00001.parquet") == b"PAR1 their validation split"
    assert not location.exists("build_config.json")


def test_a_stage_that_died_half_way_leaves_nothing_the_remote_dropped(mem, tmp_path, monkeypatch):
    from himbench.io import storage

    mem.put_bytes(b"a", "a.png")
    mem.put_bytes(b"b", "b.png")
    real_fetch = storage._fetch_capped

    def die_on_b(fs, key, local, size, url):
        if key.endswith("b.png"):
            raise KeyboardInterrupt  # the process is stopped mid-copy
        return real_fetch(fs, key, local, size, url)

    monkeypatch.setattr(storage, "_fetch_capped", die_on_b)
    with pytest.raises(KeyboardInterrupt):
        stage(mem.url, cache_dir=tmp_path / "c")
    monkeypatch.undo()
    mem.delete("a.png")  # the remote drops a file the dead copy had fetched
    local = stage(mem.url, cache_dir=tmp_path / "c")
    assert sorted(p.name for p in local.iterdir()) == ["b.png"]


def test_a_shard_named_file_dropped_into_a_finished_build_is_refused_on_resume(mem):
    from himbench.build_config import BuildConfig
    from himbench.synthesis.build import build_dataset

    config = BuildConfig(splits={"test": 1}, width=64, height=96, seed=3)
    build_dataset(config, mem.url, workers=1, progress=False)
    card = mem.read_bytes("README.md")
    mem.put_bytes(b"PAR1 not ours", "data", "train-00000-of-00001.parquet")
    with pytest.raises(InputError, match="named like a shard but no himbench build wrote it") as err:
        build_dataset(config, mem.url, workers=1, progress=False)
    assert err.value.source == mem.url_of("data", "train-00000-of-00001.parquet")
    assert mem.read_bytes("data", "train-00000-of-00001.parquet") == b"PAR1 not ours"
    assert mem.read_bytes("README.md") == card
