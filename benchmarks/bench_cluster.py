"""Build throughput on a Ray cluster and into object storage, against the local engine, one machine (issue 24).

One build config, the ``him-100k`` preset's settings (640 px, JPEG composites, 2-5 people weighted to a mean of
3.26) with ``--images`` images, is built by

- the local engine with 1 worker (the baseline) and with 2 workers,
- a local Ray (one node) with 1 CPU and with 2 CPUs,
- a Ray cluster of two nodes with 1 CPU each (``ray.cluster_utils.Cluster``: a head node and a second node added to
  it, both on this machine; they share its disk and its cores),

each into a local folder and into an S3 bucket served by moto on 127.0.0.1. Every build must write the same shard
bytes as the baseline; the benchmark checks it (sha256 of every shard) and fails otherwise. Ray timings exclude
starting Ray and one untimed warm-up build on it (what a long job on a running cluster sees; both are recorded);
local timings include starting the process pool, as one ``himbench build-dataset`` call does.

``--preset-run N`` then times the him-100k preset's settings exactly (its shard size too) for N images with the local
engine on all cores, and projects the time of 100,000 images on this machine and on k such machines, assuming
linear scaling across machines (an assumption: the measured scaling from a 1-CPU Ray node to two such nodes is
printed beside it).

    python benchmarks/bench_cluster.py                            # 192 images per build, about 5 min on 2 busy cores
    python benchmarks/bench_cluster.py --preset-run 2000          # then time 2,000 him-100k images, project 100k
    python benchmarks/bench_cluster.py --skip-engines --preset-run 10000   # projection only (scaling from --out)
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from himbench.build_config import BuildConfig
from himbench.cli.build_dataset import BUILD_PRESETS
from himbench.io.loopback_s3 import LOOPBACK_CREDENTIALS, loopback_s3_server, loopback_storage_options
from himbench.io.storage import Location
from himbench.shards import list_shards
from himbench.synthesis import build_dataset

PRESET = "him-100k"
# Dummy credentials of the moto server; also put in the environment that Ray's nodes inherit.
CREDENTIALS = LOOPBACK_CREDENTIALS
BASELINE = ("local x1", "disk")
PROJECT_NODES = (1, 2, 4, 8, 16)


def preset_config(images: int | None = None, images_per_shard: int | None = None) -> tuple[BuildConfig, int]:
    """The him-100k preset as a BuildConfig (``images`` instead of its count when given), and the preset's count.

    Read from the CLI's preset table so the benchmark follows the preset if it changes."""
    values = BUILD_PRESETS[PRESET]
    split, _, count = values["splits"].partition("=")
    low, _, high = values["instances"].partition("-")
    size = int(values["size"])
    extra = {} if images_per_shard is None else {"images_per_shard": images_per_shard}
    config = BuildConfig(
        splits={split: int(count) if images is None else images},
        width=size,
        height=size,
        min_instances=int(low),
        max_instances=int(high),
        instance_weights=tuple(float(w) for w in values["instance_weights"].split(",")),
        image_format=values["image_format"],
        **extra,
    )
    return config, int(count)


# --------------------------------------------------------------------------------------------------- servers
@contextlib.contextmanager
def moto_server() -> Iterator[dict]:
    """An S3 server (moto) on 127.0.0.1, a free port; yields the storage options that reach it."""
    previous = os.environ.get("AWS_ENDPOINT_URL")
    try:
        with loopback_s3_server() as endpoint:
            # The endpoint in the environment too, as a cluster's nodes would have it (docs/cluster.md).
            os.environ["AWS_ENDPOINT_URL"] = endpoint
            yield loopback_storage_options(endpoint)
    except RuntimeError as err:
        raise SystemExit(str(err)) from None
    finally:
        if previous is None:
            os.environ.pop("AWS_ENDPOINT_URL", None)
        else:
            os.environ["AWS_ENDPOINT_URL"] = previous


@contextlib.contextmanager
def local_ray(cpus: int) -> Iterator[None]:
    import ray

    from himbench.engines.ray_engine import start_local_ray

    try:
        start_local_ray(cpus)
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def two_node_cluster() -> Iterator[None]:
    """A head node and one more node, 1 CPU each, on this machine; the driver connected to it."""
    import ray
    from ray.cluster_utils import Cluster

    cluster = None
    try:
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
        cluster.wait_for_nodes()
        alive = [node for node in ray.nodes() if node["Alive"]]
        if len(alive) != 2:
            raise SystemExit(f"the Ray cluster has {len(alive)} alive nodes, expected 2")
        yield
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


# ------------------------------------------------------------------------------------------------- builds
class Destinations:
    """Fresh output locations: temporary folders on disk, fresh buckets on the S3 server; all removed at the end."""

    def __init__(self, s3_options: dict | None) -> None:
        self.s3_options = s3_options
        self.root = Path(tempfile.mkdtemp(prefix="himbench-bench-cluster-"))
        self.buckets: list[str] = []

    def new(self, kind: str) -> str:
        if kind == "disk":
            return tempfile.mkdtemp(dir=self.root)
        import boto3

        bucket = f"him-bench-{uuid.uuid4().hex[:12]}"
        # boto3, not s3fs's mkdir: s3fs sends us-east-1 as a location constraint, which S3 (and moto) refuse.
        boto3.client("s3", endpoint_url=self.s3_options["endpoint_url"], region_name="us-east-1",
                     aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=bucket)
        self.buckets.append(bucket)
        return f"s3://{bucket}/him"

    def options(self, kind: str) -> dict | None:
        return self.s3_options if kind == "s3" else None

    def digest(self, out: str) -> dict[str, str]:
        """sha256 of every shard written at ``out``, by file name."""
        if "://" not in out:
            return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in list_shards(out)}
        location = Location.parse(out, self.s3_options)
        fs = location.fs
        fs.invalidate_cache()  # the shards were put by other processes: no listing cached here may be trusted
        return {path.rsplit("/", 1)[-1]: hashlib.sha256(fs.cat_file(path)).hexdigest()
                for path in fs.find(location.path("data")) if path.endswith(".parquet")}

    def remove(self, out: str) -> None:
        if "://" not in out:
            shutil.rmtree(out, ignore_errors=True)
        else:
            bucket = out.split("://", 1)[1].split("/", 1)[0]
            fs = Location.parse(out, self.s3_options).fs
            with contextlib.suppress(Exception):  # the server goes away at the end anyway
                fs.rm(bucket, recursive=True)
            self.buckets.remove(bucket)

    def close(self) -> None:
        for bucket in list(self.buckets):
            self.remove(f"s3://{bucket}")
        shutil.rmtree(self.root, ignore_errors=True)


def timed_build(config: BuildConfig, where: Destinations, kind: str, engine: str, workers: int,
                write_card: bool = False) -> tuple[float, dict[str, str]]:
    """Seconds of one fresh build, and the sha256 of each shard it wrote (the output is then removed)."""
    out = where.new(kind)
    try:
        tic = time.perf_counter()
        build_dataset(config, out, workers=workers, progress=False, write_card=write_card, engine=engine,
                      storage_options=where.options(kind))
        seconds = time.perf_counter() - tic
        return seconds, where.digest(out)
    finally:
        where.remove(out)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def measure_engines(args: argparse.Namespace, config: BuildConfig, s3_options: dict | None) -> dict:
    kinds = ["disk"] + (["s3"] if s3_options is not None else [])
    where = Destinations(s3_options)
    runs: list[dict] = []
    setup: dict[str, dict] = {}
    baseline_digest: dict[str, str] | None = None

    def run(name: str, engine: str, workers: int) -> None:
        nonlocal baseline_digest
        for kind in kinds:
            before = load()
            best, digest = float("inf"), None
            for _ in range(args.repeats):
                seconds, got = timed_build(config, where, kind, engine, workers)
                best = min(best, seconds)
                if digest is not None and got != digest:
                    raise SystemExit(f"{name} to {kind}: two builds of the same config wrote different shards")
                digest = got
            if (name, kind) == BASELINE:
                baseline_digest = digest
            runs.append({"engine": name, "to": kind, "seconds": best, "images_per_s": args.images / best,
                         "shards": len(digest), "identical_to_baseline": digest == baseline_digest,
                         "load_before": before, "load_after": load()})
            print(f"  {name:<24}{kind:<6}{best:8.2f} s{args.images / best:8.2f} img/s"
                  f"  identical: {digest == baseline_digest}", flush=True)

    def ray_setup(name: str, start: Callable[[], contextlib.AbstractContextManager], workers: int) -> None:
        tic = time.perf_counter()
        with start():
            started = time.perf_counter() - tic
            tic = time.perf_counter()
            # Untimed warm-up: Ray's first tasks start its worker processes, which then import himbench.
            timed_build(warmup, where, "disk", "ray", workers)
            setup[name] = {"start_seconds": started, "warmup_seconds": time.perf_counter() - tic}
            run(name, "ray", workers)

    warmup, _ = preset_config(2 * args.images_per_shard, args.images_per_shard)
    try:
        # Untimed: fill the on-disk cache of procedural people (and import s3fs) so every variant measures the
        # same steady-state work.
        for kind in kinds:
            timed_build(warmup, where, kind, "local", 2)
        run("local x1", "local", 1)
        run("local x2", "local", 2)
        ray_setup("ray 1 node x1 CPU", lambda: local_ray(1), 1)
        ray_setup("ray 1 node x2 CPUs", lambda: local_ray(2), 2)
        ray_setup("ray 2 nodes x1 CPU", two_node_cluster, 2)
    finally:
        where.close()

    base = next(r for r in runs if (r["engine"], r["to"]) == BASELINE)
    for r in runs:
        r["ratio_vs_baseline"] = r["images_per_s"] / base["images_per_s"]
    return {"runs": runs, "ray_setup": setup, "all_identical": all(r["identical_to_baseline"] for r in runs)}


def print_table(result: dict) -> None:
    runs = result["runs"]
    kinds = list(dict.fromkeys(r["to"] for r in runs))
    print(f"\n{'engine':<24}" + "".join(f"{kind + ' img/s':>13}{'vs base':>9}" for kind in kinds) + "  identical")
    for name in dict.fromkeys(r["engine"] for r in runs):
        row = {r["to"]: r for r in runs if r["engine"] == name}
        cells = "".join(f"{row[k]['images_per_s']:13.2f}{row[k]['ratio_vs_baseline']:8.2f}x" for k in kinds)
        print(f"{name:<24}{cells}  {all(r['identical_to_baseline'] for r in row.values())}")
    print(f"baseline: {BASELINE[0]} to {BASELINE[1]}; every shard identical to the baseline's: "
          f"{result['all_identical']}")
    for name, info in result["ray_setup"].items():
        print(f"{name}: start {info['start_seconds']:.1f} s, warm-up build {info['warmup_seconds']:.1f} s (untimed)")


def node_scaling(result: dict) -> dict[str, float]:
    """Measured 1 -> 2 node scaling: the 2-node Ray cluster (1 CPU each) against a 1-node Ray with 1 CPU."""
    rate = {(r["engine"], r["to"]): r["images_per_s"] for r in result["runs"]}
    return {kind: rate[("ray 2 nodes x1 CPU", kind)] / rate[("ray 1 node x1 CPU", kind)]
            for kind in ("disk", "s3") if ("ray 2 nodes x1 CPU", kind) in rate}


def preset_projection(images: int, scaling: dict[str, float] | None) -> dict:
    """Time ``images`` images of the him-100k preset (its settings, local engine, all cores, card written)."""
    config, target = preset_config(images)
    workers = os.cpu_count() or 1
    where = Destinations(None)
    try:
        timed_build(preset_config(64)[0], where, "disk", "local", workers)  # untimed: procedural people cached
        before = load()
        seconds, digest = timed_build(config, where, "disk", "local", workers, write_card=True)
        after = load()
    finally:
        where.close()
    rate = images / seconds
    one = target / rate
    projection = {str(k): one / k for k in PROJECT_NODES}
    print(f"\n{PRESET} settings, {images} images, local engine, {workers} workers: {seconds:.1f} s "
          f"({rate:.2f} img/s; {len(digest)} shards; load {before} -> {after})")
    print(f"projected {target:,} images: " + ", ".join(
        f"{k} node{'s' if k > 1 else ''} {projection[str(k)] / 3600:.2f} h" for k in PROJECT_NODES))
    print("  assumes linear scaling across machines like this one; measured 1 -> 2 Ray nodes of 1 CPU each (both "
          "on this machine): "
          + (", ".join(f"{v:.2f}x to {k}" for k, v in scaling.items()) if scaling else "not measured in this run"))
    return {"preset": PRESET, "images": images, "workers": workers, "seconds": seconds, "images_per_s": rate,
            "shards": len(digest), "load_before": before, "load_after": after, "target_images": target,
            "projected_seconds_by_nodes": projection,
            "assumption": "linear scaling across identical machines (no shared bottleneck such as the object store)",
            "measured_node_scaling_1_to_2": scaling}


def environment() -> dict:
    import ray

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "ray": ray.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=192, help="Images per build of the engine comparison.")
    parser.add_argument("--images-per-shard", type=int, default=16, help="Shard size (one shard = one task).")
    parser.add_argument("--repeats", type=int, default=2, help="Timed builds per variant; the best is kept.")
    parser.add_argument("--no-s3", action="store_true", help="Local folders only (no moto S3 server).")
    parser.add_argument("--skip-engines", action="store_true",
                        help="Skip the engine comparison (with --preset-run: the scaling is read from --out).")
    parser.add_argument("--preset-run", type=int, default=0, metavar="N",
                        help="Also time N images of the him-100k preset and project 100,000 (0: no).")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/cluster.json"))
    parser.add_argument("--preset-out", type=Path, default=None,
                        help="JSON of the projection.  [default: benchmarks/results/cluster_him100k_<N>.json]")
    args = parser.parse_args()

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.update(CREDENTIALS)  # Ray's nodes (started below) inherit it, as docs/cluster.md asks of real ones
    start_load = load()
    result = None
    if not args.skip_engines:
        config, _ = preset_config(args.images, args.images_per_shard)
        print(f"{PRESET} settings, {args.images} images at {config.width} px, {config.num_shards('train')} shards, "
              f"best of {args.repeats}; {os.cpu_count()} cores, load average {start_load}", flush=True)
        with contextlib.ExitStack() as stack:
            s3_options = None if args.no_s3 else stack.enter_context(moto_server())
            result = measure_engines(args, config, s3_options)
        result = {
            "benchmark": "cluster",
            "config": {"preset": PRESET, "images": args.images, "size": config.width,
                       "images_per_shard": args.images_per_shard, "repeats": args.repeats,
                       "instance_weights": list(config.instance_weights), "image_format": config.image_format},
            "baseline": " to ".join(BASELINE),
            "note": "Ray timings exclude starting Ray and one warm-up build on it; local ones include the pool start. "
                    "The 2-node cluster is two Ray nodes on this one machine (same cores, same disk). S3 is moto on "
                    "127.0.0.1, sharing the cores.",
            **result,
            "node_scaling_1_to_2": None,
            "environment": {**environment(), "load_average_before": start_load, "load_average_after": load()},
        }
        result["node_scaling_1_to_2"] = node_scaling(result)
        print_table(result)
        print(f"load average (1, 5, 15 min): before {start_load}, after {result['environment']['load_average_after']}")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
        if not result["all_identical"]:
            raise SystemExit("a variant wrote shards that differ from the baseline's")

    if args.preset_run > 0:
        if result is not None:
            scaling = result["node_scaling_1_to_2"]
        elif args.out.is_file():
            scaling = json.loads(args.out.read_text()).get("node_scaling_1_to_2")
        else:
            scaling = None
        projection = preset_projection(args.preset_run, scaling)
        projection["environment"] = environment()
        path = args.preset_out or args.out.with_name(f"cluster_him100k_{args.preset_run}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(projection, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
