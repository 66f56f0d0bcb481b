"""A Ray cluster that cannot lose shards: checks that every node sees what the driver sees, and shard checksums.

A multi-node Ray build hands every task the driver's output location and source folders. Where those are local paths
that some node does not share, that node would write its shards to its own disk (or fail to read a cut-out), and the
driver would report shards it does not have. So, before any work:

- :func:`check_output_shared`: one tiny task pinned to each alive node writes a token (a random nonce and the node's
  id) under ``<out>/.himbench-node-check/``; the driver reads every token back. A node whose token the driver cannot
  see, or that cannot write, is refused with an :class:`~himbench.io.InputError` naming the node and the location and
  suggesting object storage. Only the tokens of this check are removed afterwards.
- :func:`check_sources_shared`: every node lists the ``--fg``/``--bg`` source folders (names and sizes) and reports
  the digest of its himbench code and of the libraries that decide output bytes (the embedded corpus ships with the
  package); a node that sees other files, or runs other code, is refused naming the node and the folder.

After the work, each shard's report carries the node that wrote it (:func:`writer_node`) and its sha256
(:func:`file_sha256`, of the bytes written: on a store, of the local file before its put) and, on a store, the
object's ETag read back after the put; :func:`verify_shards` checks every listed shard exists as written before the
driver writes its card. Locations are paths or fsspec URLs (``s3://bucket/him``), opened with
``fsspec.core.url_to_fs(location, **storage_options)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import socket
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from himbench.io import IMAGE_SUFFIXES, InputError, sha256_file

__all__ = [
    "CHECK_DIR",
    "CHECK_TIMEOUT_S",
    "LOCAL_NODE",
    "check_output_shared",
    "check_sources_shared",
    "code_digest",
    "file_sha256",
    "preflight",
    "verify_shards",
    "writer_node",
]

CHECK_DIR = ".himbench-node-check"
LOCAL_NODE = "local"
# A node that does not answer a check within this long is refused: it could not take shards either.
CHECK_TIMEOUT_S = 120.0
# Libraries whose versions can change a shard's bytes; a node running other versions would break byte identity.
_BYTE_LIBRARIES = ("numpy", "cv2", "skimage", "pyarrow", "PIL")


def _fs(location: str, storage_options: dict | None) -> tuple[Any, str]:
    from fsspec.core import url_to_fs

    return url_to_fs(str(location), **(storage_options or {}))


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


# --------------------------------------------------------------------------------------------- what a node is
def _this_node() -> dict[str, str]:
    import ray

    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "ip": ray.util.get_node_ip_address(),
        "host": socket.gethostname(),
    }


def _label(node: dict[str, str]) -> str:
    return f"{node['node_id']} ({node.get('host', '?')}/{node.get('ip', '?')})"


def writer_node() -> str:
    """Who runs this code, for a shard's report: ``"<ray node id> (<host>/<ip>)"`` inside a Ray worker, else
    :data:`LOCAL_NODE` (the local engine, or the driver itself)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return LOCAL_NODE
    from ray._private import worker

    if worker.global_worker.mode != ray.WORKER_MODE:
        return LOCAL_NODE
    return _label(_this_node())


def file_sha256(location: str | os.PathLike, storage_options: dict | None = None) -> str:
    """The sha256 of the file (or object) at ``location``, read in chunks."""
    fs, path = _fs(str(location), storage_options)
    return sha256_file(path, opener=fs.open)


# ------------------------------------------------------------------------------------------ tasks on each node
def _write_token(location: str, storage_options: dict | None, nonce: str) -> dict:
    node = _this_node()
    answer = {**node, "path": "", "token": "", "error": "", "made_dir": False}
    try:
        fs, root = _fs(location, storage_options)
        folder = _join(root, CHECK_DIR)
        if os.path.islink(folder) and "local" in fs.protocol:  # never follow a link out of the output location
            raise OSError(f"{folder} is a symbolic link")
        answer["made_dir"] = not fs.exists(folder)
        fs.makedirs(folder, exist_ok=True)
        path = _join(folder, f"{nonce}-{node['node_id']}.token")
        token = json.dumps({"nonce": nonce, **node})
        fs.pipe_file(path, token.encode())
        answer.update(path=path, token=token)
    except Exception as err:  # reported by the driver, naming this node
        answer["error"] = f"{type(err).__name__}: {err}"
    return answer


def _remove_token(location: str, storage_options: dict | None, path: str, made_dir: bool) -> None:
    """Remove this check's token as this node sees it (a private disk the driver cannot clean), and the check folder
    if this check made it and it is left empty (other builds' tokens, or a folder found there, stay)."""
    with contextlib.suppress(Exception):
        fs, root = _fs(location, storage_options)
        if fs.exists(path):
            fs.rm_file(path)
        folder = _join(root, CHECK_DIR)
        if made_dir and fs.isdir(folder) and not fs.ls(folder, detail=False):
            fs.rmdir(folder)


def _folder_listing(spec: str, storage_options: dict | None) -> dict[str, int]:
    """``{relative name: size}`` of the image files under ``spec`` as this process sees them (empty if none)."""
    try:
        fs, root = _fs(spec, storage_options)
        found = fs.find(root, detail=True)
    except Exception:
        return {}
    root = root.rstrip("/")
    listing = {}
    for path, info in found.items():
        if os.path.splitext(path)[1].lower() in IMAGE_SUFFIXES and info.get("type") == "file":
            listing[path[len(root):].lstrip("/")] = int(info.get("size") or 0)
    return dict(sorted(listing.items()))


def code_digest() -> dict[str, str]:
    """What decides a shard's bytes besides its arguments: the himbench version, a digest of its code (the embedded
    corpus included) and the versions of the imaging libraries."""
    import himbench

    root = os.path.dirname(os.path.abspath(himbench.__file__))
    digest = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                digest.update(os.path.relpath(path, root).encode() + b"\0")
                with open(path, "rb") as handle:
                    digest.update(handle.read() + b"\0")
    found = {"himbench": himbench.__version__, "himbench code": digest.hexdigest()[:16]}
    for name in _BYTE_LIBRARIES:
        try:
            module = __import__(name)
            found[name] = str(getattr(module, "__version__", "?"))
        except ImportError:
            found[name] = "missing"
    return found


def _node_sources(specs: list[str], storage_options: dict | None) -> dict:
    listings = {spec: _digest(_folder_listing(spec, storage_options)) for spec in specs}
    return {**_this_node(), "listings": listings, "code": code_digest()}


def _digest(listing: dict[str, int]) -> tuple[int, str]:
    return len(listing), hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------------ the checks
def _alive_nodes() -> list[dict]:
    import ray

    return [node for node in ray.nodes() if node.get("Alive")]


def _on_each_node(fn: Any, *args: Any) -> list[tuple[dict, Any]]:
    """Run ``fn(*args)`` once on every alive node (pinned, no CPU taken, so a head without CPUs answers too);
    ``[(node, answer)]``; a node that fails or does not answer within :data:`CHECK_TIMEOUT_S` is an InputError."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(fn)
    calls = []
    for node in _alive_nodes():
        strategy = NodeAffinitySchedulingStrategy(node_id=node["NodeID"], soft=False)
        calls.append((node, remote.options(num_cpus=0, scheduling_strategy=strategy, max_retries=0).remote(*args)))
    answers = []
    for node, ref in calls:
        label = _label({"node_id": node["NodeID"], "host": node.get("NodeManagerHostname", "?"),
                        "ip": node.get("NodeManagerAddress", "?")})
        try:
            answers.append((node, ray.get(ref, timeout=CHECK_TIMEOUT_S)))
        except Exception as err:
            raise InputError(f"ray node {label}", f"did not answer the cluster check ({type(err).__name__}: {err}); "
                                                  "every node must be able to run himbench tasks") from err
    return answers


def check_output_shared(location: str | os.PathLike, storage_options: dict | None = None) -> None:
    """Refuse (InputError) an output ``location`` that some node of the connected Ray cluster cannot write, or writes
    to a disk of its own. Each alive node writes a token there; the driver must read back every one."""
    import ray

    location = str(location)
    nonce = secrets.token_hex(8)
    fs, root = _fs(location, storage_options)
    made_here = not fs.exists(_join(root, CHECK_DIR))  # as the driver sees it; a folder found there is kept
    answers = _on_each_node(_write_token, location, storage_options, nonce)
    try:
        for _node, answer in answers:
            label = _label(answer)
            if answer["error"]:
                raise InputError(location, f"ray node {label} cannot write here ({answer['error']}); every node "
                                           "must write the output location: use object storage (--out s3://bucket/"
                                           "him) or a filesystem mounted at the same path on every node")
            try:
                seen = fs.cat_file(answer["path"]).decode("utf-8", errors="replace")
            except (FileNotFoundError, OSError):
                seen = None
            if seen != answer["token"]:
                raise InputError(location, f"is not shared with ray node {label}: the token it wrote at "
                                           f"{answer['path']} is not visible here, so its shards would land on its "
                                           "own disk. Use object storage (--out s3://bucket/him) or a filesystem "
                                           "mounted at the same path on every node")
    finally:
        cleanup = [ray.remote(_remove_token).options(
            num_cpus=0, max_retries=0,
            scheduling_strategy=_pinned(answer["node_id"])).remote(location, storage_options, answer["path"],
                                                                   answer["made_dir"])
            for _node, answer in answers if answer["path"]]
        with contextlib.suppress(Exception):
            ray.get(cleanup, timeout=CHECK_TIMEOUT_S)
        for _node, answer in answers:  # the driver's view, too (the same files where shared)
            if answer["path"]:
                _remove_token(location, storage_options, answer["path"], made_here)


def _pinned(node_id: str) -> Any:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)


def check_sources_shared(source_specs: Iterable[str], storage_options: dict | None = None) -> None:
    """Refuse (InputError) when some node of the connected Ray cluster sees other files in a source folder than the
    driver (names and sizes), or runs other himbench code or imaging libraries. ``"embedded"`` specs ship with the
    package and are covered by the code check."""
    specs = [spec for spec in dict.fromkeys(str(s) for s in source_specs) if spec != "embedded"]
    here = {spec: _digest(_folder_listing(spec, storage_options)) for spec in specs}
    code = code_digest()
    for _node, answer in _on_each_node(_node_sources, specs, storage_options):
        label = _label(answer)
        for spec in specs:
            theirs = tuple(answer["listings"][spec])
            if theirs != here[spec]:
                raise InputError(spec, f"ray node {label} sees {theirs[0]} image file(s) in this source folder, the "
                                       f"driver {here[spec][0]} (or other names or sizes); every node must read the "
                                       "same sources: use object storage (s3://...) or a filesystem mounted at the "
                                       "same path on every node")
        differs = [f"{key} {answer['code'].get(key)} (driver: {value})" for key, value in code.items()
                   if answer["code"].get(key) != value]
        if differs:
            raise InputError(f"ray node {label}", "runs other code than the driver: " + ", ".join(differs)
                             + "; install the same himbench and libraries on every node (shards would differ)")


@contextlib.contextmanager
def preflight(engine: str, workers: int | None, ray_address: str | None, location: str | os.PathLike,
              source_specs: Iterable[str], storage_options: dict | None = None) -> Iterator[None]:
    """For ``engine="ray"``: connect to Ray once for the whole build (the work then uses that connection), check the
    output location and the sources on every node, and disconnect at the end if this call connected. A no-op for
    the local engine."""
    if engine != "ray":
        yield
        return
    import ray

    from himbench.engines.ray_engine import connect

    started = connect(max(1, workers or os.cpu_count() or 1), ray_address)
    try:
        check_output_shared(location, storage_options)
        check_sources_shared(source_specs, storage_options)
        yield
    finally:
        if started:
            ray.shutdown()


def verify_shards(shards: Iterable[Any], storage_options: dict | None = None) -> None:
    """Check that every shard report (``.path``, ``.sha256``, ``.node``, optionally ``.etag``) names a file that
    exists as its writer made it; InputError naming the first shard that is missing or differs. Nothing is deleted.

    A local file (or an object whose writer recorded no ETag) is read and its sha256 compared. An object with an
    ETag is not downloaded: its ETag is read back (one HEAD request) and compared with the one the writer read right
    after its put. The store computes the ETag from the bytes it received (the MD5 of a single-part put), so any other
    put to that name changes it, and the writer's sha256 is of the very file it put."""
    fs_cache: dict[str, Any] = {}
    for shard in shards:
        expected = getattr(shard, "sha256", "")
        etag = getattr(shard, "etag", "")
        writer = getattr(shard, "node", "") or "unknown"
        try:
            if etag:
                found_etag = _etag(str(shard.path), storage_options, fs_cache)
            else:
                found = file_sha256(shard.path, storage_options)
        except (FileNotFoundError, OSError):
            raise InputError(shard.path, f"this shard, written by node {writer}, is missing from the output "
                                         "location; its node may not share it: use object storage (s3://...) or a "
                                         "shared filesystem, then rerun the build (finished shards are kept)") from None
        if etag and found_etag != etag:
            raise InputError(shard.path, f"this shard's ETag is {found_etag}, but node {writer} reported {etag} "
                                         "after its put; another process may have replaced it. Rerun the build (it "
                                         "redoes shards that are not this build's)")
        if not etag and expected and found != expected:
            raise InputError(shard.path, f"this shard's sha256 is {found}, but node {writer} reported {expected}; "
                                         "another process may have changed it. Rerun the build (it redoes shards "
                                         "that are not this build's)")


def _etag(location: str, storage_options: dict | None, fs_cache: dict[str, Any]) -> str | None:
    """The ETag of the object at ``location`` as the store reports it now (not a listing cached earlier)."""
    protocol = location.split("://", 1)[0]
    if protocol not in fs_cache:
        fs, _ = _fs(location, storage_options)
        fs.invalidate_cache()  # workers in other processes wrote since this process last listed
        fs_cache[protocol] = fs
    fs = fs_cache[protocol]
    info = fs.info(fs._strip_protocol(location))
    etag = info.get("ETag") or info.get("etag")
    return str(etag).strip('"') if etag else None
