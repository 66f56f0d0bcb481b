"""A multi-node Ray cluster on this machine that cannot lose shards (issue 24, part 2).

One module-scoped cluster: a head node (1 CPU, runs the driver's node) made by ``ray.cluster_utils.Cluster``, and a
second node started by ``ray start --block`` in its own mount namespace (``unshare -m``), where a tmpfs hides the
``private`` folder: that node sees an empty private folder where the driver sees the real one, as a second machine
would see its own disk. Everything else on the machine is shared, as a network filesystem would be.

Helpers that run inside Ray workers live in this module, pickled by value (workers cannot import test modules).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import s3_server as moto_s3  # noqa: E402

from himbench.build_config import BuildConfig  # noqa: E402
from himbench.engines import cluster as cluster_checks  # noqa: E402
from himbench.io import InputError  # noqa: E402
from himbench.io.storage import Location  # noqa: E402
from himbench.shards import list_shards  # noqa: E402
from himbench.synthesis import build as build_module  # noqa: E402
from himbench.synthesis import build_dataset  # noqa: E402

pytestmark = pytest.mark.cluster

CONFIG = BuildConfig(splits={"train": 4}, width=128, height=96, images_per_shard=1, seed=5)
# The builds to S3 (a moto server on 127.0.0.1, which the second node reaches: it shares the loopback network).
S3_CONFIG = BuildConfig(splits={"train": 2, "test": 4}, width=64, height=96, images_per_shard=2, seed=7)
s3_server = moto_s3.s3_server
s3 = moto_s3.s3
_NODE_START_S = 90.0


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(folder)}


def _mount_namespace_prefix() -> list[str] | None:
    """``unshare -m`` (or, unprivileged, ``unshare -rm``) if it may mount a tmpfs here; None otherwise."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


@pytest.fixture(scope="module")
def reference_build(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    build_dataset(CONFIG, out, workers=1, progress=False)
    return out


@pytest.fixture(scope="module")
def s3_reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("s3-reference")
    build_dataset(S3_CONFIG, out, workers=1, progress=False)
    return out


def _object_shards(location: Location) -> dict[str, bytes]:
    return {name: location.fs.cat_file(location.path("data", name)) for name in location.list("data")}


def _file_shards(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in list_shards(folder)}


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory):
    """``(private folder, the second node's id)`` of a connected 2-node cluster."""
    from ray.cluster_utils import Cluster

    # Without mount namespaces the second node shares the disk: the tests that need a non-shared folder skip
    # (private is None), the others (builds, kills, S3) still run on two nodes.
    prefix = _mount_namespace_prefix()
    root = tmp_path_factory.mktemp("cluster")
    private, node_dir = root / "private", root / "node-b"
    private.mkdir()
    (node_dir / "tmp").mkdir(parents=True)
    if ray.is_initialized():
        ray.shutdown()
    head = node = None
    with pytest.MonkeyPatch.context() as patch:
        # Nodes and their workers inherit this environment: caches stay inside the test's temp folder.
        patch.setenv("HIMBENCH_CACHE", str(root / "himbench-cache"))
        patch.setenv("HF_HOME", str(root / "hf"))
        # Each node stages URL sources into a cache of its own (the driver's is the s3 fixture's).
        patch.setenv("HIMBENCH_STORAGE_CACHE", str(root / "storage-head"))
        patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
        try:
            head = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
            ray_bin = str(Path(sys.executable).with_name("ray"))
            start = f"exec '{ray_bin}' start --address='{head.address}' --num-cpus=1 --block --disable-usage-stats"
            command = f"mount -t tmpfs tmpfs '{private}' && {start}" if prefix else start
            env = {**os.environ, "TMPDIR": str(node_dir / "tmp"), "HIMBENCH_STORAGE_CACHE": str(node_dir / "storage")}
            node = subprocess.Popen([*(prefix or []), "sh", "-c", command], cwd=node_dir, env=env,
                                    start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            ray.init(address=head.address, log_to_driver=False)
            head_id = ray.get_runtime_context().get_node_id()
            deadline = time.monotonic() + _NODE_START_S
            while len(alive := [n for n in ray.nodes() if n["Alive"]]) < 2:
                assert node.poll() is None, "the second Ray node exited at start"
                assert time.monotonic() < deadline, "the second Ray node did not join"
                time.sleep(0.5)
            other = next(n["NodeID"] for n in alive if n["NodeID"] != head_id)
            ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
            yield (private if prefix else None), other
        finally:
            ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
            ray.shutdown()
            if node is not None:
                _stop_group(node)
            if head is not None:
                head.shutdown()


def _private(two_nodes) -> tuple[Path, str]:
    private, other = two_nodes
    if private is None:
        pytest.skip("unshare may not mount a tmpfs here (no mount namespaces): cannot make a non-shared folder")
    return private, other


def _stop_group(process: subprocess.Popen) -> None:
    """Stop ``ray start --block`` and what it started (its own session: raylet, workers)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


# ------------------------------------------------------------------------------------------------ worker helpers
def _build_killing_shard_1(markers: Path, build) -> tuple:
    """Run ``build()`` in a thread, SIGKILL the Ray worker making shard 1 once it is mid-shard (it wrote its pid to
    ``markers/shard-1.pid``, see :func:`_slow_build_shard`); (the build's report, the killed pid)."""
    result: dict = {}

    def run() -> None:
        try:
            result["report"] = build()
        except BaseException as err:  # re-raised below
            result["error"] = err

    thread = threading.Thread(target=run)
    thread.start()
    marker = markers / "shard-1.pid"
    deadline = time.monotonic() + 60
    while not (marker.is_file() and marker.read_text()):
        assert time.monotonic() < deadline and thread.is_alive(), "shard 1 never started"
        time.sleep(0.1)
    pid = int(marker.read_text())
    os.kill(pid, signal.SIGKILL)  # the Ray worker process making shard 1, mid-shard (before its write or put)
    thread.join(timeout=120)
    assert not thread.is_alive()
    if "error" in result:
        raise result["error"]
    return result["report"], pid


def _slow_build_shard(marker_dir, config, task, out_dir, fg_refs, bg_refs):
    """``build_shard`` whose first attempt at shard 1 records its pid and waits to be killed (mid-shard)."""
    from himbench.synthesis import build as build_in_worker

    if task.index == 1:
        marker = Path(marker_dir) / "shard-1.pid"
        try:
            fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            pass
        else:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            time.sleep(120)  # the test kills this process meanwhile
    return build_in_worker.build_shard(config, task, out_dir, fg_refs, bg_refs)


# ---------------------------------------------------------------------------------------- without a cluster
def test_local_report_names_local_writer_and_checksums(reference_build):
    report = json.loads((reference_build / "build_report.json").read_text())
    digests = _digest(reference_build)
    assert len(report["shards"]) == 4
    for shard in report["shards"]:
        assert shard["node"] == "local"
        assert shard["sha256"] == digests[Path(shard["path"]).name]


def test_verify_refuses_a_missing_or_changed_shard_and_deletes_nothing(tmp_path):
    config = BuildConfig(splits={"train": 2}, width=64, height=96, images_per_shard=1, seed=3)
    report = build_dataset(config, tmp_path / "b", workers=1, progress=False, write_card=False)
    first, second = (Path(s.path) for s in report.shards)
    cluster_checks.verify_shards(report.shards)  # as built: fine

    first.write_bytes(first.read_bytes() + b"x")
    with pytest.raises(InputError, match=r"sha256 is [0-9a-f]{64}, but node local reported") as err:
        cluster_checks.verify_shards(report.shards)
    assert err.value.source == str(first)
    assert first.is_file() and second.is_file()

    second.unlink()
    with pytest.raises(InputError, match="written by node local, is missing") as err:
        cluster_checks.verify_shards(report.shards[1:])
    assert err.value.source == str(second)
    assert first.is_file()


# ------------------------------------------------------------------------------------------ on two nodes
def test_cluster_build_equals_local_build_and_lists_writers(two_nodes, reference_build, tmp_path):
    out = tmp_path / "shared-out"
    report = build_dataset(CONFIG, out, workers=2, progress=False, engine="ray")
    assert ray.is_initialized()  # used the cluster it found and left it alone
    assert _digest(out) == _digest(reference_build)
    assert not (out / cluster_checks.CHECK_DIR).exists()  # the node tokens were removed

    nodes = {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
    written = json.loads((out / "build_report.json").read_text())["shards"]
    assert [Path(s["path"]).name for s in written] == sorted(_digest(out))
    for shard in written:
        node_id, where = shard["node"].split(" ", 1)
        assert node_id in nodes and nodes[node_id]["NodeManagerAddress"] in where
        assert shard["sha256"] == hashlib.sha256(Path(shard["path"]).read_bytes()).hexdigest()
    assert {s.node for s in report.shards} == {s["node"] for s in written}

    # A rerun resumes: every shard kept, none rewritten (modification times unchanged), same report entries.
    times = {p.name: p.stat().st_mtime_ns for p in list_shards(out)}
    again = build_dataset(CONFIG, out, workers=2, progress=False, engine="ray")
    assert all(shard.resumed for shard in again.shards)
    assert {p.name: p.stat().st_mtime_ns for p in list_shards(out)} == times
    assert [(s.node, s.sha256) for s in again.shards] == [(s["node"], s["sha256"]) for s in written]


def test_non_shared_output_is_refused_before_any_work(two_nodes, tmp_path):
    private, other = _private(two_nodes)
    out = private / "out"
    with pytest.raises(InputError, match=r"is not shared with ray node .*s3://bucket/him") as err:
        build_dataset(CONFIG, out, workers=2, progress=False, engine="ray")
    assert err.value.source == str(out)
    node = next(n for n in ray.nodes() if n["NodeID"] == other)
    assert other in err.value.problem and node["NodeManagerAddress"] in err.value.problem
    assert list(out.iterdir()) == []  # no config, no shard, no token left: nothing started


def test_cli_refuses_a_non_shared_out_in_one_line(two_nodes):
    from click.testing import CliRunner

    from himbench.cli import main

    private, other = _private(two_nodes)
    out = private / "cli-out"
    result = CliRunner().invoke(main, ["build-dataset", "--engine", "ray", "--out", str(out), "--splits", "train=2",
                                       "--size", "64x96", "--no-fg-cache", "--no-progress"])
    assert result.exit_code == 2, result.output
    message = result.output.strip().splitlines()
    assert len(message) == 1 and message[0].startswith(f"Error: {out}: is not shared with ray node {other}")
    assert "s3://bucket/him" in message[0] and list(out.iterdir()) == []


def test_check_folder_that_is_a_link_is_not_followed(two_nodes, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / cluster_checks.CHECK_DIR).symlink_to(elsewhere)
    with pytest.raises(InputError, match="cannot write here .*is a symbolic link"):
        cluster_checks.check_output_shared(out)
    assert list(elsewhere.iterdir()) == [] and (out / cluster_checks.CHECK_DIR).is_symlink()


def test_a_check_folder_found_there_is_kept(two_nodes, tmp_path):
    (tmp_path / cluster_checks.CHECK_DIR).mkdir()
    (tmp_path / cluster_checks.CHECK_DIR / "theirs.token").write_text("not ours")
    cluster_checks.check_output_shared(tmp_path)
    assert [p.name for p in (tmp_path / cluster_checks.CHECK_DIR).iterdir()] == ["theirs.token"]


def test_sources_a_node_cannot_see_are_refused(two_nodes, tmp_path):
    import cv2

    private, other = _private(two_nodes)
    backgrounds = private / "bg"
    backgrounds.mkdir()
    for k in range(2):
        cv2.imwrite(str(backgrounds / f"bg{k}.png"), np.full((96, 128, 3), 40 * k, np.uint8))
    config = BuildConfig(splits={"train": 2}, width=128, height=96, images_per_shard=1, seed=5,
                         bg_sources=(str(backgrounds),))
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"sees 0 image file\(s\) in this source folder, the driver 2") as err:
        build_dataset(config, out, workers=2, progress=False, engine="ray")
    assert err.value.source == str(backgrounds) and other in err.value.problem
    assert not (out / "build_config.json").exists() and not (out / "data").exists()


def test_worker_killed_mid_shard_loses_nothing(two_nodes, reference_build, tmp_path, monkeypatch):
    markers = tmp_path / "markers"
    markers.mkdir()
    out = tmp_path / "killed"
    monkeypatch.setattr(build_module, "build_shard", functools.partial(_slow_build_shard, str(markers)))
    report, pid = _build_killing_shard_1(markers, lambda: build_dataset(CONFIG, out, workers=2, progress=False,
                                                                        engine="ray"))
    assert report.num_images == 4
    stat = Path(f"/proc/{pid}/stat")  # gone, or a zombie its parent has not reaped yet
    assert not stat.is_file() or stat.read_text().rsplit(")", 1)[-1].split()[0] == "Z"
    assert _digest(out) == _digest(reference_build)
    assert sorted(p.name for p in (out / "data").iterdir()) == sorted(_digest(reference_build))


# ------------------------------------------------------------------------------ on two nodes, into S3
def test_s3_build_on_two_nodes_equals_local_build_and_resumes(two_nodes, s3, s3_reference):
    bucket, options = s3
    url = f"{bucket}/him"
    report = build_dataset(S3_CONFIG, url, workers=2, progress=False, engine="ray", storage_options=options)
    location = Location.parse(url, options)
    assert _object_shards(location) == _file_shards(s3_reference)
    assert location.read_bytes("build_config.json") == (s3_reference / "build_config.json").read_bytes()
    assert not location.exists(build_module.LOCK_FILE)  # released
    assert cluster_checks.CHECK_DIR not in location.list_dirs()  # the node tokens were removed

    nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
    local = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(s3_reference)}
    written = json.loads(location.read_bytes("build_report.json"))["shards"]
    assert sorted(s["path"] for s in written) == [location.url_of("data", name) for name in sorted(local)]
    for shard in written:
        name = shard["path"].rsplit("/", 1)[-1]
        assert shard["node"].split(" ", 1)[0] in nodes
        assert shard["sha256"] == local[name]  # taken from the file before its put
        assert shard["etag"] == location.info("data", name)["etag"]  # read back after the put
    assert [(s.node, s.sha256, s.etag) for s in report.shards] == [(s["node"], s["sha256"], s["etag"]) for s in written]

    # A rerun resumes: every shard kept, no object rewritten (LastModified and ETag unchanged).
    before = {name: location.info("data", name) for name in location.list("data")}
    time.sleep(1.1)  # S3 times have one-second resolution: a rewrite would show
    again = build_dataset(S3_CONFIG, url, workers=2, progress=False, engine="ray", storage_options=options)
    assert [s.resumed for s in again.shards] == [True] * 3
    assert {name: location.info("data", name) for name in location.list("data")} == before
    assert [(s.node, s.sha256, s.etag) for s in again.shards] == [(s["node"], s["sha256"], s["etag"]) for s in written]


def test_s3_verify_refuses_a_replaced_or_missing_object(two_nodes, s3, s3_reference):
    bucket, options = s3
    url = f"{bucket}/him"
    report = build_dataset(S3_CONFIG, url, workers=2, progress=False, engine="ray", storage_options=options)
    location = Location.parse(url, options)
    cluster_checks.verify_shards(report.shards, options)  # as built: fine
    first, second = (s.path.rsplit("/", 1)[-1] for s in report.shards[:2])
    location.put_bytes(location.read_bytes("data", first) + b"x", "data", first)
    with pytest.raises(InputError, match=r"ETag is \w+, but node .* reported \w+ after its put") as err:
        cluster_checks.verify_shards(report.shards, options)
    assert err.value.source == report.shards[0].path
    location.delete("data", second)
    with pytest.raises(InputError, match="is missing from the output location") as err:
        cluster_checks.verify_shards(report.shards[1:], options)
    assert err.value.source == report.shards[1].path
    assert location.exists("data", first)  # nothing deleted


def test_worker_killed_mid_shard_of_an_s3_build_loses_nothing(two_nodes, s3, s3_reference, tmp_path, monkeypatch):
    bucket, options = s3
    url = f"{bucket}/killed"
    markers = tmp_path / "markers"
    markers.mkdir()
    monkeypatch.setattr(build_module, "build_shard", functools.partial(_slow_build_shard, str(markers)))
    report, _ = _build_killing_shard_1(markers, lambda: build_dataset(S3_CONFIG, url, workers=2, progress=False,
                                                                      engine="ray", storage_options=options))
    assert report.num_images == 6
    location = Location.parse(url, options)
    assert _object_shards(location) == _file_shards(s3_reference)
    assert location.list("data") == sorted(_file_shards(s3_reference))  # no partial object left


def test_evaluate_reads_ground_truth_of_a_cluster_build_from_s3(two_nodes, s3, s3_reference, tmp_path):
    from click.testing import CliRunner

    from himbench.cli.evaluate import command as evaluate_command
    from himbench.synthesis.export import export_him2k

    bucket, options = s3
    url = f"{bucket}/him"
    build_dataset(S3_CONFIG, url, workers=2, progress=False, engine="ray", storage_options=options)
    export_him2k(s3_reference, tmp_path / "him2k", progress=False)
    preds = tmp_path / "him2k" / "alphas"
    common = [str(preds), "--split", "test", "--quiet", "--workers", "1"]
    runner = CliRunner()
    local = runner.invoke(evaluate_command, [*common, "--gt", str(s3_reference), "--out", str(tmp_path / "a")])
    assert local.exit_code == 0, local.output
    remote = runner.invoke(evaluate_command, [*common, "--gt", url, "--out", str(tmp_path / "b"),
                                              "--storage-options", json.dumps(options)])
    assert remote.exit_code == 0, remote.output
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    staged = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert staged.pop("config")["gt"].startswith(str(tmp_path / "storage-cache"))  # read from the store
    summary.pop("config")
    assert summary == staged and summary["summary"]["num_images"] == 4


def test_s3_sources_on_two_nodes_equal_local_folders_and_refuse_a_changed_object(two_nodes, s3, realdata, tmp_path,
                                                                                tmp_path_factory):
    bucket, options = s3
    remote = Location.parse(bucket, options)
    mirror = tmp_path / "mirror" / remote.root  # the same two last names as the URLs: the same labels
    moto_s3.put_sources(remote, realdata, mirror)
    urls = BuildConfig(splits={"train": 2}, width=64, height=96, images_per_shard=1, seed=3,
                       fg_sources=(f"{bucket}/p3m",), bg_sources=(f"{bucket}/bgs",))
    folders = BuildConfig(**{**urls.to_dict(), "fg_sources": (str(mirror / "p3m"),),
                             "bg_sources": (str(mirror / "bgs"),)})
    build_dataset(folders, tmp_path / "folders", workers=1, progress=False)
    build_dataset(urls, tmp_path / "urls", workers=1, progress=False, storage_options=options)
    url = f"{bucket}/him"
    report = build_dataset(urls, url, workers=2, progress=False, engine="ray", storage_options=options)
    assert report.num_images == 2
    if any(shard.node.startswith(two_nodes[1]) for shard in report.shards):  # the second node staged its own copy
        assert list(tmp_path_factory.getbasetemp().glob("cluster*/node-b/storage/*/bgs/*.jpg"))
    location = Location.parse(url, options)
    assert _object_shards(location) == _file_shards(tmp_path / "urls")  # byte for byte
    assert moto_s3.tables(tmp_path / "urls") == moto_s3.tables(tmp_path / "folders")  # every column, every value
    config = json.loads(location.read_bytes("build_config.json"))
    assert (config["fg_sources"], config["bg_sources"]) == ([f"{bucket}/p3m"], [f"{bucket}/bgs"])

    name = remote.list("p3m", "alpha")[0]
    data = bytearray(remote.read_bytes("p3m", "alpha", name))
    data[-5] ^= 1  # the same size, other bytes: another ETag
    remote.fs.pipe_file(remote.path("p3m", "alpha", name), bytes(data))
    with pytest.raises(InputError, match=rf"fg folder {bucket}/p3m: 1 file changed \(size or time\) "
                                         rf"\(alpha/{name}\)"):
        build_dataset(urls, url, workers=2, progress=False, engine="ray", storage_options=options)
