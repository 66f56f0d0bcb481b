"""build-dataset into S3 (a moto server on 127.0.0.1): the same bytes as a local build, resume, the lock's lease,
and the readers (evaluate, push-to-hub) taking s3:// URLs."""

from __future__ import annotations

import contextlib
import functools
import json
import time
from pathlib import Path

import boto3
import pytest
import s3_server as moto_s3
from click.testing import CliRunner
from helpers import tiny_build

from himbench.build_config import BuildConfig
from himbench.io import InputError
from himbench.io.storage import Location, lease_lock, stage
from himbench.synthesis.build import LOCK_FILE, build_dataset
from himbench.synthesis.output import PROGRESS_FILE

# The fixtures of the S3 server (a moto server on 127.0.0.1, one per session) and of a fresh bucket per test.
s3_server = moto_s3.s3_server
_put_sources, _tables = moto_s3.put_sources, moto_s3.tables
s3 = moto_s3.s3
CONFIG = BuildConfig(splits={"train": 2, "test": 3}, width=64, height=96, seed=5, images_per_shard=2)


@pytest.fixture(scope="module")
def local_build(tmp_path_factory) -> Path:
    return tiny_build(CONFIG, tmp_path_factory.mktemp("local") / "him")


def _shards(location: Location) -> dict[str, bytes]:
    return {name: location.fs.cat_file(location.path("data", name)) for name in location.list("data")}


def _local_shards(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "data").glob("*.parquet"))}


def _build(url: str, options: dict, **kwargs):
    return build_dataset(CONFIG, url, workers=1, progress=False, storage_options=options, **kwargs)


def test_s3_build_equals_local_build_and_resumes_without_rewriting(s3, local_build):
    bucket, options = s3
    url = f"{bucket}/him"
    report = build_dataset(CONFIG, url, workers=2, progress=False, storage_options=options)  # 2 worker processes
    location = Location.parse(url, options)
    assert _shards(location) == _local_shards(local_build)
    assert location.read_bytes("build_config.json") == (local_build / "build_config.json").read_bytes()
    assert not location.exists(LOCK_FILE)  # released
    assert report.shards[0].path.startswith("s3://")
    card = location.read_bytes("README.md").decode()
    assert f'"test": "{url}/data/test-*.parquet"' in card and "storage_options" in card

    before = {name: location.info("data", name) for name in location.list("data")}
    time.sleep(1.1)  # S3 times have one-second resolution: a rewrite would show
    again = _build(url, options)
    assert again.to_dict()["resumed_shards"] == again.to_dict()["num_shards"] == 3
    assert {name: location.info("data", name) for name in location.list("data")} == before


def test_interrupted_s3_build_resumes_to_identical_bytes(s3, local_build):
    bucket, options = s3
    url = f"{bucket}/him"
    _build(url, options)
    location = Location.parse(url, options)
    kept = location.info("data", "train-00000-of-00001.parquet")
    location.delete("data", "test-00000-of-00002.parquet")  # never written
    location.put_bytes(b"PAR1 truncated", "data", "test-00001-of-00002.parquet")  # a damaged object
    location.put_bytes(b"someone else's", "data", "notes.txt")  # not ours: stays
    report = _build(url, options)
    assert report.to_dict()["resumed_shards"] == 1
    assert {k: v for k, v in _shards(location).items() if k.endswith(".parquet")} == _local_shards(local_build)
    assert location.info("data", "train-00000-of-00001.parquet") == kept
    assert location.read_bytes("data", "notes.txt") == b"someone else's"


def test_lock_lease_refuses_a_live_build_and_takes_over_a_stale_one(s3, local_build):
    bucket, options = s3
    url = f"{bucket}/him"
    location = Location.parse(url, options)
    live = {"owner": "x", "host": "elsewhere", "pid": 4242, "expires": time.time() + 300}
    location.put_bytes(json.dumps(live).encode(), LOCK_FILE)
    with pytest.raises(InputError, match=r"pid 4242 on elsewhere.*lease valid"):
        _build(url, options)
    assert location.list("data") == []  # refused before any work
    stale = {**live, "expires": time.time() - 1}
    location.put_bytes(json.dumps(stale).encode(), LOCK_FILE)
    _build(url, options)
    assert _shards(location) == _local_shards(local_build)
    assert not location.exists(LOCK_FILE)


def test_s3_refuses_a_foreign_prefix(s3):
    bucket, options = s3
    location = Location.parse(f"{bucket}/him", options)
    location.put_bytes(b"mine", "photo.jpg")
    with pytest.raises(InputError, match="not empty.*photo.jpg"):
        _build(f"{bucket}/him", options)
    assert location.read_bytes("photo.jpg") == b"mine"


def test_evaluate_reads_ground_truth_and_predictions_from_s3(s3, local_build, tmp_path):
    from himbench.cli.evaluate import command as evaluate_command
    from himbench.synthesis.export import export_him2k

    bucket, options = s3
    export_him2k(local_build, tmp_path / "him2k", progress=False)
    preds = tmp_path / "him2k" / "alphas"
    remote = Location.parse(f"{bucket}/run", options)
    remote.fs.put(str(local_build) + "/", remote.path("gt"), recursive=True)
    remote.fs.put(str(preds) + "/", remote.path("pred"), recursive=True)
    runner = CliRunner()
    common = ["--split", "test", "--quiet", "--workers", "1"]
    local = runner.invoke(evaluate_command, [str(preds), "--gt", str(local_build), "--out", str(tmp_path / "a"),
                                             *common])
    assert local.exit_code == 0, local.output
    from_s3 = runner.invoke(evaluate_command, [f"{bucket}/run/pred", "--gt", f"{bucket}/run/gt", "--out",
                                               str(tmp_path / "b"), "--storage-options", json.dumps(options), *common])
    assert from_s3.exit_code == 0, from_s3.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    staged = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert staged.pop("config")["gt"].startswith(str(tmp_path / "storage-cache"))  # read from the staging cache
    summary.pop("config")
    assert summary == staged
    assert summary["summary"]["num_images"] == 3


@pytest.mark.parametrize("value, problem", [("{not json", "not valid JSON"), ("[1, 2]", "must be a JSON object")])
def test_bad_storage_options_exit_2_naming_the_problem(value, problem, tmp_path):
    from himbench.cli.build_dataset import command as build_command

    result = CliRunner().invoke(build_command, ["--out", "s3://bucket/him", "--storage-options", value])
    assert result.exit_code == 2
    assert "--storage-options" in result.output and problem in result.output


def test_push_to_hub_plans_an_s3_source(s3):
    from himbench.cli.push_to_hub import command as push_command

    bucket, options = s3
    _build(f"{bucket}/him", options)
    result = CliRunner().invoke(push_command, [f"{bucket}/him", "me/him", "--dry-run", "--storage-options",
                                               json.dumps(options)])
    assert result.exit_code == 0, result.output
    assert "would upload 6 files" in result.output
    for name in ("data/test-00000-of-00002.parquet", "data/train-00000-of-00001.parquet", "README.md"):
        assert name in result.output
    assert ".himbench-build" not in result.output


def test_cli_build_with_sources_from_s3(s3, realdata, tmp_path):
    from himbench.cli.build_dataset import command as build_command

    bucket, options = s3
    remote = Location.parse(bucket, options)
    mirror = tmp_path / "mirror" / remote.root  # the same two last names: bucket/p3m, bucket/bgs
    _put_sources(remote, realdata, mirror)
    args = ["--splits", "test=2", "--size", "64x96", "--workers", "1", "--no-fg-cache", "--no-progress"]
    url_args = [*args, "--fg", f"{bucket}/p3m", "--bg", f"{bucket}/bgs", "--storage-options", json.dumps(options)]
    result = CliRunner().invoke(build_command, ["--out", str(tmp_path / "him"), *url_args])
    assert result.exit_code == 0, result.output
    config = json.loads((tmp_path / "him" / "build_config.json").read_text())
    assert config["fg_sources"] == [f"{bucket}/p3m"] and config["bg_sources"] == [f"{bucket}/bgs"]
    recorded = json.loads((tmp_path / "him" / ".himbench-build-sources.json").read_text())
    assert [(s["spec"], len(s["files"])) for s in recorded["sources"]] == [(f"{bucket}/p3m", 6), (f"{bucket}/bgs", 3)]
    result = CliRunner().invoke(build_command, ["--out", str(tmp_path / "folders"), *args, "--fg",
                                                str(mirror / "p3m"), "--bg", str(mirror / "bgs")])
    assert result.exit_code == 0, result.output
    assert _tables(tmp_path / "him") == _tables(tmp_path / "folders")  # the same rows, bytes and labels

    # An object changed between runs (same size, other bytes: its ETag differs): the resume is refused, naming it.
    name = sorted(remote.list("bgs"))[0]
    data = bytearray(remote.read_bytes("bgs", name))
    data[-3] ^= 1
    remote.fs.pipe_file(remote.path("bgs", name), bytes(data))
    result = CliRunner().invoke(build_command, ["--out", str(tmp_path / "him"), *url_args])
    assert result.exit_code == 2, result.output
    assert f"bg folder {bucket}/bgs: 1 file changed (size or time) ({name})" in " ".join(result.output.split())


def _staged(location: Location) -> Path:
    from himbench.io.storage import stage

    return stage(location.url, location.options)


def test_datasets_loads_the_s3_build_as_the_card_says(s3, monkeypatch):
    datasets = pytest.importorskip("datasets")
    config = pytest.importorskip("datasets.config")

    # datasets' offline switch also stops s3:// data files; this test reaches only the loopback server.
    monkeypatch.setattr(config, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(config, "HF_DATASETS_OFFLINE", False)
    bucket, options = s3
    _build(f"{bucket}/him", options)
    ds = datasets.load_dataset("parquet", data_files={"test": f"{bucket}/him/data/test-*.parquet"},
                               storage_options=options)
    assert ds["test"].num_rows == 3 and {"image", "alphas"} <= set(ds["test"].column_names)


@pytest.mark.parametrize("hostile, problem", [
    ("him/a/../b.png", "relative folder reference"),
    ("him/d//e.png", "is empty"),
    ("him/x", "is both an object and a folder"),  # next to him/x/y.png
    ("him/z/", "name ends in '/'"),  # a non-empty object whose key ends in '/'
])
def test_stage_refuses_a_hostile_listing_in_one_line(s3, tmp_path, hostile, problem):
    bucket, options = s3
    location = Location.parse(bucket, options)
    client = boto3.client("s3", endpoint_url=options["endpoint_url"], region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.put_object(Bucket=location.root, Key="him/ok.png", Body=b"ok")
    client.put_object(Bucket=location.root, Key="him/x/y.png", Body=b"y")
    client.put_object(Bucket=location.root, Key="him/marker/", Body=b"")  # an empty folder marker: skipped
    client.put_object(Bucket=location.root, Key=hostile, Body=b"evil")
    with pytest.raises(InputError, match=problem):
        stage(f"{bucket}/him", options, cache_dir=tmp_path / "c")
    staged = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert all(p.is_relative_to(tmp_path / "c") for p in staged) and not any(p.name == "b.png" for p in staged)
    client.delete_object(Bucket=location.root, Key=hostile)
    local = stage(f"{bucket}/him", options, cache_dir=tmp_path / "c")
    assert sorted(str(p.relative_to(local)) for p in local.rglob("*") if p.is_file()) == ["ok.png", "x/y.png"]


def _stale_lock(location: Location) -> bytes:
    stale = json.dumps({"owner": "dead", "host": "h", "pid": 1, "expires": time.time() - 5}).encode()
    location.put_bytes(stale, LOCK_FILE)
    return stale


def test_moto_honours_if_match_so_the_lease_uses_it(s3):
    bucket, options = s3
    location = Location.parse(f"{bucket}/him", options)
    assert location.conditional_writes(f"{LOCK_FILE}.probe-t")
    assert location.list() == []  # the probe wrote nothing
    location.put_bytes(b"one", "x")
    first = location.info("x")["etag"]
    assert location.replace_if(b"two", "0" * 32, "x") is None and location.read_bytes("x") == b"one"
    second = location.replace_if(b"two", first, "x")
    assert second and second != first and location.read_bytes("x") == b"two"
    assert location.replace_if(b"three", first, "x") is None  # keyed on an ETag that is gone
    assert not location.delete_if(first, "x") and location.exists("x")
    assert location.delete_if(second, "x") and not location.exists("x")


def test_two_takers_of_one_stale_lease_exactly_one_wins(s3, monkeypatch):
    import threading

    bucket, options = s3
    location = Location.parse(f"{bucket}/him", options)
    _stale_lock(location)
    # Both takers have judged the lock stale and hold its ETag before either replaces it.
    both_read = threading.Barrier(2, timeout=10)
    real_replace = Location.replace_if

    def replace_together(self, data, etag, *names):
        if names == (LOCK_FILE,):
            with contextlib.suppress(threading.BrokenBarrierError):
                both_read.wait()
        return real_replace(self, data, etag, *names)

    monkeypatch.setattr(Location, "replace_if", replace_together)
    results: dict[str, object] = {}
    release = threading.Event()

    def taker(key: str) -> None:
        try:
            with lease_lock(location, LOCK_FILE, lease_s=300) as lease:
                results[key] = lease["owner"]
                release.wait(10)
        except InputError as err:
            results[key] = err

    threads = [threading.Thread(target=taker, args=(key,)) for key in "ab"]
    for thread in threads:
        thread.start()
    deadline = time.time() + 10
    while len(results) < 2 and time.time() < deadline:
        time.sleep(0.02)
    winners = [v for v in results.values() if isinstance(v, str)]
    losers = [v for v in results.values() if isinstance(v, InputError)]
    assert len(winners) == 1 and len(losers) == 1, results
    assert "holds" in str(losers[0]) and LOCK_FILE in str(losers[0])
    assert json.loads(location.read_bytes(LOCK_FILE))["owner"] == winners[0]
    assert location.list() == [LOCK_FILE]  # replaced in one put: no claim object
    release.set()
    for thread in threads:
        thread.join(10)
    assert location.list() == []  # the winner released it


def test_a_holder_whose_lease_was_taken_over_fails_its_renewal(s3, monkeypatch):
    import threading

    bucket, options = s3
    location = Location.parse(f"{bucket}/him", options)
    woken = threading.Event()
    real_replace = Location.replace_if

    def stalled_renewal(self, data, etag, *names):  # the holder's renewal thread stalls until its lease is gone
        if threading.current_thread() is not threading.main_thread():
            woken.wait(10)
        return real_replace(self, data, etag, *names)

    monkeypatch.setattr(Location, "replace_if", stalled_renewal)
    with lease_lock(location, LOCK_FILE, lease_s=0.6) as a:
        while json.loads(location.read_bytes(LOCK_FILE))["expires"] > time.time():
            time.sleep(0.05)
        with lease_lock(location, LOCK_FILE, lease_s=300) as b:  # takes the expired lease over
            woken.set()
            deadline = time.time() + 5
            while a.lost is None and time.time() < deadline:
                time.sleep(0.02)
            assert "renewal was refused" in (a.lost or "")
            with pytest.raises(InputError, match=r"lost the build lock s3://.*\.himbench-build\.lock.*another build"):
                a.check()
            assert json.loads(location.read_bytes(LOCK_FILE))["owner"] == b["owner"]
    assert location.list() == []  # a left b's lock alone; b released it


def test_a_build_that_lost_its_lease_stops_before_the_report(s3, monkeypatch):
    import threading

    import himbench.synthesis.output as output

    bucket, options = s3
    url = f"{bucket}/him"
    location = Location.parse(url, options)
    monkeypatch.setattr(output, "lease_lock", functools.partial(lease_lock, lease_s=1.0))
    stalled, woken = threading.Event(), threading.Event()
    real_replace, real_put = Location.replace_if, Location.put_bytes
    other = contextlib.ExitStack()

    def stalled_renewal(self, data, etag, *names):
        if stalled.is_set() and threading.current_thread() is not threading.main_thread():
            woken.wait(10)
        return real_replace(self, data, etag, *names)

    def stall_after_first_progress(self, data, *names):
        real_put(self, data, *names)
        if names == (PROGRESS_FILE,) and not woken.is_set():
            # The build stalls past its lease; another build takes the lock over meanwhile.
            stalled.set()
            while json.loads(location.read_bytes(LOCK_FILE))["expires"] > time.time():
                time.sleep(0.05)
            other.enter_context(lease_lock(location, LOCK_FILE, lease_s=300))
            woken.set()

    monkeypatch.setattr(Location, "replace_if", stalled_renewal)
    monkeypatch.setattr(Location, "put_bytes", stall_after_first_progress)
    with other:
        with pytest.raises(InputError, match=r"lost the build lock .*\.himbench-build\.lock"):
            _build(url, options)
        assert not location.exists("build_report.json") and not location.exists("README.md")
        assert location.exists(LOCK_FILE)  # the other build's lock stays
    assert not location.exists(LOCK_FILE)


def test_a_worker_copy_that_lists_otherwise_is_refused_naming_node_and_source(s3, realdata, tmp_path):
    from dataclasses import replace

    from himbench.synthesis import build as build_module

    bucket, options = s3
    remote = Location.parse(bucket, options)
    _put_sources(remote, realdata, tmp_path / "mirror", count=1)
    config = BuildConfig(splits={"test": 1}, width=64, height=96, fg_sources=(f"{bucket}/p3m",))
    (source,) = build_module.stage_sources(config, options)
    assert source.url == f"{bucket}/p3m" and source.label == f"{remote.root}/p3m"
    assert sorted(source.files) == sorted(f"{kind}/{p.name}" for kind in ("alpha", "original")
                                          for p in (tmp_path / "mirror" / "p3m" / kind).iterdir())
    stale = replace(source, digest="0" * 16)  # what the driver saw is not what this worker's copy lists
    task = build_module.plan_shards(config)[0]
    with pytest.raises(InputError, match=r"node local lists other files in this source") as err:
        build_module.build_shard_from_urls(config, task, tmp_path / "out", [], [], (stale,))
    assert err.value.source == f"{bucket}/p3m"
    assert not (tmp_path / "out").exists()
    cached = sorted(p.relative_to(source.root) for p in Path(source.root).rglob("*"))
    remote.fs.pipe_file(remote.path("p3m", "original", "new.jpg"), b"x")  # changed meanwhile: the copy stays as it is
    with pytest.raises(InputError, match=r"lists other files in this source"):
        build_module.build_shard_from_urls(config, task, tmp_path / "out", [], [], (source,))
    assert sorted(p.relative_to(source.root) for p in Path(source.root).rglob("*")) == cached
