"""`himbench predict`: run a registered model over images into the HIM-2K prediction layout (SPEC s.4).

On a folder in a single-matte benchmark layout (P3M-500-P/NP, AIM-500, PPM-100, Composition-1k; see
:mod:`himbench.layouts`) it writes both the instance folders and ``OUT/<stem>.png``, the instances merged into one
matte (their sum clipped to [0, 1]), the file the benchmarks' own evaluators read; so every registered model runs on
them unchanged. A method that takes a trimap (``mask-cf``) uses the benchmark's own trimap when it ships one;
mask-guided models take their guidance from the ground truth (``--guidance``), which the manifest marks as an oracle.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from himbench.cli.errors import Command, UserError
from himbench.cli.options import device_option, threads_option

__all__ = ["command", "collect_inputs"]


def collect_inputs(inputs: tuple[str, ...], split: str | None) -> list[tuple[str, str, object]]:
    """Expand IMAGES into (split, stem, source) items; source is a Path or a shard dataset index.

    Files are taken as they are; a folder contributes its image files (sorted, not recursive); a built shard folder
    (one with data/*.parquet) contributes every sample of ``split`` (or of all its splits), named by sample id.
    """
    from himbench.layouts import find_layout
    from himbench.shards import list_shards, splits_in

    items: list[tuple[str, str, object]] = []
    for raw in inputs:
        path = Path(raw)
        layout = find_layout(path, "images")  # one table decides what kind of folder this is (himbench.layouts)
        if layout is not None and layout.name != "shards":
            items.extend(_layout_items(path, layout.name, split))
        elif layout is not None and list_shards(path):
            from himbench.data import HIMShardDataset

            for shard_split in [split] if split else splits_in(path):
                dataset = HIMShardDataset(path, shard_split)
                items.extend((shard_split, "", (dataset, index)) for index in range(len(dataset)))
        elif path.is_dir():
            files, passed_over = _folder_images(path)
            if passed_over:
                _warn_passed_over(path, passed_over)
            items.extend((split or "test", p.stem, p) for p in files)
        elif path.is_file():
            items.append((split or "test", path.stem, path))
        else:
            raise click.BadParameter(f"{raw}: no such file or folder", param_hint="IMAGES")
    _refuse_clashing_names(items)
    return items


def _folder_images(folder: Path) -> tuple[list[Path], list[Path]]:
    """The image files of an input folder, and what else is in it (a GIF, a HEIC, notes, a subfolder): those are
    reported, not passed over in silence. Hidden entries (``.DS_Store``) are left out of both."""
    from himbench.io import IMAGE_SUFFIXES

    files, others = [], []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        (files if entry.is_file() and entry.suffix.lower() in IMAGE_SUFFIXES else others).append(entry)
    return files, others


def _warn_passed_over(folder: Path, entries: list[Path]) -> None:
    from himbench.io import IMAGE_SUFFIXES

    readable = ", ".join(suffix[1:] for suffix in IMAGE_SUFFIXES)
    names = [entry.name + ("/" if entry.is_dir() else "") for entry in entries]
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    click.echo(
        f"warning: {folder}: skipped {len(entries)} {'entry' if len(entries) == 1 else 'entries'} that "
        f"{'is not an image' if len(entries) == 1 else 'are not images'} predict reads ({readable}; folders "
        f"are not searched recursively): {shown}",
        err=True,
    )


def _layout_items(path: Path, layout: str, split: str | None) -> list[tuple[str, str, object]]:
    """(split, stem, ground-truth item) of every sample of a benchmark folder (HIM-2K or single-matte layout)."""
    from himbench.evaluation.ground_truth import open_ground_truth
    from himbench.io import InputError
    from himbench.layouts import get_layout

    try:
        splits = [split] if split and get_layout(layout).name == "him2k" else get_layout(layout).splits(path)
        items = []
        for gt_split in splits:
            truth = open_ground_truth(path, gt_split, layout)
            for problem in truth.problems:
                click.echo(f"skipped: {problem.file}: {problem.message}", err=True)
            items.extend((split or gt_split, item.stem, item) for item in truth.items())
    except InputError as err:
        raise click.BadParameter(str(err), param_hint="IMAGES") from err
    return items


def _refuse_clashing_names(items: list[tuple[str, str, object]]) -> None:
    """Two inputs with one output folder (a.jpg and a.png both become <split>/a/) would overwrite each other."""
    seen: dict[tuple[str, str], object] = {}
    for item_split, stem, source in items:
        if not stem:  # shard samples are named by id later; ids are unique within a shard folder
            continue
        if (item_split, stem) in seen:
            raise click.BadParameter(
                f"{seen[(item_split, stem)]} and {source} would both be written to {item_split}/{stem}/: rename one "
                "(nothing was written)",
                param_hint="IMAGES",
            )
        seen[(item_split, stem)] = source


@click.command("predict", cls=Command)
@click.option(
    "--model",
    "model_name",
    default=None,
    help="Registered model name, or a method that runs one model (mask-refine runs mask-refine-tiny: the network "
    "`himbench bench -m mask-refine` runs); default: the one recorded in the checkpoint's config.json.",
)
@click.option(
    "--checkpoint",
    default=None,
    help="Checkpoint folder (model.safetensors + config.json), a .safetensors file, or a Hugging Face Hub "
    "model id (owner/name[@revision]). Pickle files are refused (convert the authors' .ckpt/.pth with "
    "`himbench import-checkpoint`). Default: the checkpoint shipped with --model, if it has one.",
)
@click.argument("images", nargs=-1, required=True)
@click.option(
    "-o",
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Prediction folder; writes OUT/<split>/<stem>/<k>.png (8-bit mattes) and scores.json per image.",
)
@click.option(
    "--split",
    default=None,
    help="For shard folders: the split to predict (default: all). For image files/folders: the split "
    "folder name to write under OUT (default: test).",
)
@click.option("--batch-size", default=1, show_default=True, type=click.IntRange(min=1), help="Images per forward pass.")
@device_option()
@threads_option()
@click.option("--score-threshold", default=None, type=float, help="Override the model's person-score threshold.")
@click.option(
    "--masks",
    "masks_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="Guidance masks for mask-guided models (mgm, mask-refine): M-HIM2K layout DIR/<split>/<stem>/<k>.png.",
)
@click.option(
    "--guidance",
    default=None,
    help="Guidance for mask-guided models on built shard folders: masks from the ground truth (binarised at 0.5), "
    "perturbed by none, erode, dilate, drop, merge or a comma list (e.g. erode,drop). On video input: first-frame "
    "(the first frame's ground truth carried through each clip by optical flow: an oracle seed; the default for "
    "mask-guided methods), xmem or disk:NAME (a V-HIM folder's <split>/NAME/<video>/<frame>/<k>.png masks), or none "
    "(the default and only choice for methods that find people themselves).",
)
@click.option(
    "--video",
    is_flag=True,
    help="Treat the input as video (also detected: a `build-dataset --video` folder or a V-HIM folder): run the "
    "method frame by frame and write OUT/<split>/<video>/<frame>/<k>.png, k the same person in every frame "
    "(automatic methods: each frame's people matched to the previous ones by IoU).",
)
@click.option(
    "--smooth",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0.0, 1.0, max_open=True),
    help="Video only: temporal smoothing strength w in [0, 1), a moving average of each person's matte over frames "
    "along optical flow (0 = off). Higher w flickers less but lags behind motion (more per-frame error).",
)
def command(
    model_name, checkpoint, images, out_dir, split, batch_size, device, threads, score_threshold, masks_dir, guidance,
    video, smooth,
) -> None:
    """Predict instance mattes for IMAGES (files, folders of images, or built shard folders) with a trained model.
    Any input size; mattes are written at the original size. A bad image is reported and skipped; the rest go on.

    A folder contributes its jpg, jpeg, png, bmp, tif, tiff and webp files (not recursively); anything else in it (a
    GIF, HEIC, a subfolder) is named in one warning line and skipped. Two inputs with one stem (a.jpg and a.png) are
    refused, since they would share one output folder.

    Mask-guided models (mgm, mask-refine-*) need guidance: --masks DIR (any input) or --guidance for shard folders.

    Video (one `build-dataset --video` folder or V-HIM folder, or --video): any method or model runs frame by frame;
    see --guidance and --smooth. The manifest records the method, guidance, smoothing and seed."""
    import torch
    from tqdm import tqdm

    from himbench.checkpoints import load_model
    from himbench.device import resolve_device
    from himbench.io import InputError, read_image, safe_name
    from himbench.predictions.writer import write_prediction
    from himbench.registry import batch_predictor, traits_of

    if split is not None:
        try:
            safe_name(split, "--split", "split name")
        except InputError as err:
            raise click.BadParameter(str(err), param_hint="--split") from err
    if threads:
        torch.set_num_threads(threads)
    try:
        device = resolve_device(device)
    except InputError as err:
        raise click.BadParameter(str(err), param_hint="--device") from err
    if video or _is_video(images):
        _predict_video(model_name, checkpoint, images, out_dir, split, device, guidance, smooth,
                       {"--masks": masks_dir, "--score-threshold": score_threshold,
                        "--batch-size": batch_size if batch_size != 1 else None})
        return
    if smooth:
        raise click.UsageError("--smooth applies to video input only")
    overrides = {"score_threshold": score_threshold} if score_threshold is not None else {}
    if model_name is not None and checkpoint is None and _runs_no_model(model_name):
        model, checkpoint = _MethodRunner(model_name, device), f"method:{model_name}"  # mask-cf, mask-only
    else:
        if model_name is not None:
            model_name = _model_name(model_name)
        if checkpoint is None:
            checkpoint = _default_checkpoint(model_name)
        try:
            model = load_model(checkpoint, model_name, device=device, **overrides)
        except (InputError, KeyError) as err:  # a checkpoint or option the model refuses: one line, exit 2
            raise UserError(str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)) from err
    guide = _guidance_reader(masks_dir, guidance)
    items = collect_inputs(images, split)
    traits = traits_of(model)
    trimap_only = traits.takes_trimap and items and all(_has_trimap(i[2]) for i in items)
    if guide is None and traits.mask_guided and not trimap_only:
        raise click.UsageError("this model is mask-guided: pass --masks DIR or, for shard folders and benchmark "
                               "folders, --guidance none (masks from the ground truth: an oracle)")
    out = Path(out_dir)
    options = {"batch_size": batch_size, "device": device, "score_threshold": score_threshold, "masks": masks_dir,
               "guidance": guidance, "split": split}
    if guidance is not None and masks_dir is None:
        options["guidance_oracle"] = True  # the masks come from the ground truth being scored
    if traits.takes_trimap and any(_has_trimap(i[2]) for i in items):
        options["trimap"] = "benchmark"  # the benchmark's own trimaps, where it ships them
    manifest = _manifest(out, images, items, model, model_name or _stored_model_name(checkpoint), checkpoint, options)
    failures: list[str] = []
    written = 0

    def load(item):
        item_split, stem, source = item
        alphas = trimap = None
        if isinstance(source, tuple):
            dataset, index = source
            stem, image, alphas = dataset.read_raw(index)
        elif hasattr(source, "alpha_paths"):  # a benchmark folder's sample: photo, ground truth, trimap
            image, alphas, trimap = _read_layout_item(source)
        else:
            image = read_image(source)
        use_trimap = trimap is not None and traits.takes_trimap
        masks = guide(item_split, stem, image.shape[:2], alphas) if guide is not None and not use_trimap else None
        return item_split, stem, image, masks, trimap if use_trimap else None, _is_single(source)

    def flush(batch):
        nonlocal written
        if not batch:
            return
        images_ = [entry[2] for entry in batch]
        with torch.no_grad():
            if any(entry[4] is not None for entry in batch):  # the benchmark's trimap (methods that take one)
                results = [model.predict_instances(e[2], e[3], trimap=e[4]) for e in batch]
            elif (predict_batch := batch_predictor(model)) is not None:
                results = predict_batch(images_, [entry[3] for entry in batch])
            else:
                results = [model.predict_instances(img, entry[3]) for img, entry in zip(images_, batch, strict=True)]
        for (item_split, stem, image, _, _, single), (alphas, scores) in zip(batch, results, strict=True):
            # A single-matte benchmark also gets OUT/<stem>.png, the instances merged (clipped sum).
            try:
                write_prediction(out, item_split, stem, alphas, scores, image.shape[:2] if single else None)
            except InputError as err:  # ids from shards are names, never paths
                failures.append(str(err))
                click.echo(f"skipped: {err}", err=True)
                continue
            written += 1

    pending = []
    for item in tqdm(items, desc="predict", unit="img"):
        try:
            pending.append(load(item))
        except InputError as err:
            failures.append(str(err))
            click.echo(f"skipped: {err}", err=True)
            continue
        if len(pending) >= batch_size:
            flush(pending)
            pending = []
    flush(pending)
    if written:
        from himbench.predictions.manifest import write_manifest

        write_manifest(out, manifest)
    click.echo(f"wrote predictions for {written} image(s) to {out}" + (f"; {len(failures)} failed" if failures else ""))
    if failures and not written:
        raise SystemExit(1)


def _is_video(images: tuple[str, ...]) -> bool:
    from himbench.predictions.video_writer import is_video_input

    return len(images) == 1 and is_video_input(images[0])


def _predict_video(model_name, checkpoint, images, out_dir, split, device, guidance, smooth, unused) -> None:
    """The video case of predict: one clip build or V-HIM folder, run frame by frame (predict_video)."""
    from himbench.methods import create_method
    from himbench.predictions.video_writer import is_video_input, predict_video

    given = sorted(name for name, value in unused.items() if value is not None)
    if given:
        raise click.UsageError(f"{', '.join(given)} {'does' if len(given) == 1 else 'do'} not apply to video input")
    if len(images) != 1 or not is_video_input(images[0]):
        raise UserError(f"{images[0] if len(images) == 1 else ' '.join(images)}: --video needs exactly one "
                        "`build-dataset --video` folder or V-HIM folder (<split>/fgr/ and <split>/pha/)")
    name = model_name or (_stored_model_name(checkpoint) if checkpoint else None)
    if name is None:
        raise click.UsageError("pass --model NAME (a method or model) or --checkpoint")
    try:
        method = create_method(name, checkpoint=checkpoint, device=device)
    except KeyError as err:
        raise click.UsageError(str(err.args[0]) if err.args else str(err)) from err
    except TypeError as err:
        raise click.UsageError(str(err)) from err
    try:
        summary = predict_video(method, images[0], out_dir, split=split, guidance=guidance, smoothing=smooth,
                                progress=True)
    except ValueError as err:  # an InputError is mapped by Command; an option the method cannot use is one line
        from himbench.io import InputError

        if isinstance(err, InputError):
            raise
        raise click.UsageError(str(err)) from err
    click.echo(f"wrote predictions for {summary['clips']} clip(s), {summary['frames']} frame(s) to {out_dir} "
               f"(guidance {summary['config']['guidance']}, smoothing {summary['config']['smoothing']:g})")


def _read_layout_item(item) -> tuple:
    """(image, (G, H, W) ground-truth mattes, trimap or None) of a benchmark folder's sample; InputError if bad."""
    from himbench.io import InputError, read_image

    if not item.image_path:
        raise InputError(item.alpha_paths[0] if item.alpha_paths else item.stem, "no photo for this ground truth")
    image = read_image(item.image_path)
    alphas, problems = item.load()
    if alphas is None:
        raise InputError(problems[0].file, problems[0].message) if problems else InputError(item.stem, "unreadable")
    trimap = None
    if hasattr(item, "load_trimap"):
        trimap, trimap_problems = item.load_trimap(image.shape[:2])
        for problem in trimap_problems:
            click.echo(f"warning: {problem.file}: {problem.message}", err=True)
    return image, alphas, trimap


def _is_single(source: object) -> bool:
    from himbench.layouts import SingleMatteItem

    return isinstance(source, SingleMatteItem)


def _has_trimap(source: object) -> bool:
    return _is_single(source) and bool(source.trimap_path)


def _runs_no_model(name: str) -> bool:
    """True for a registered method that runs no learned model (mask-cf, mask-only): predict runs it directly."""
    from himbench.registry import list_models, method_entry

    entry = method_entry(name)
    return name not in list_models() and entry is not None and not entry.models


@dataclass(frozen=True)
class _MethodConfig:
    spec: dict


class _MethodRunner:
    """A method that runs no learned model (``mask-cf``, ``mask-only``) behind the model interface predict uses.
    A method with ``predict_with_trimap`` (``mask-cf``) takes the benchmark's own trimap when one is given."""

    def __init__(self, name: str, device: str) -> None:
        from himbench.methods import create_method
        from himbench.registry import is_mask_guided

        self.method = create_method(name, device=device)
        self.mask_guided = is_mask_guided(name)
        self.takes_trimap = self.method.takes_trimap
        self.config = _MethodConfig(dict(getattr(self.method, "spec", {"name": name})))

    def predict_instances(self, image, masks=None, trimap=None):
        if trimap is not None and self.takes_trimap:
            prediction = self.method.predict_with_trimap(image, trimap)
        else:
            prediction = self.method.predict(image, masks)
        return prediction.alphas, prediction.scores


def _model_name(name: str) -> str:
    """The registered model ``name`` runs (methods and models share one namespace), or a usage error."""
    from himbench.registry import model_for

    try:
        return model_for(name)
    except KeyError as err:
        raise click.UsageError(str(err.args[0])) from err


def _default_checkpoint(model_name: str | None) -> str:
    """The checkpoint shipped with ``model_name``, or a usage error that says what to pass."""
    from himbench.registry import default_checkpoint

    if model_name is None:
        raise click.UsageError("pass --checkpoint (or --model NAME for a model that ships a checkpoint)")
    shipped = default_checkpoint(model_name)
    if shipped is not None:
        return str(shipped)
    from himbench.checkpoints import refuse_random_weights
    from himbench.io import InputError

    try:
        refuse_random_weights(model_name)  # reads the class's traits: no network is built
    except KeyError as err:
        raise click.UsageError(str(err.args[0])) from err
    except InputError as err:
        raise click.UsageError(str(err)) from err
    raise click.UsageError(f"{model_name} ships no checkpoint: pass --checkpoint (e.g. one written by himbench train)")


def _guidance_reader(masks_dir: str | None, guidance: str | None):
    """``(split, stem, (H, W), gt_alphas or None) -> (N,H,W) bool masks``, or None when no guidance was asked for."""
    if masks_dir is None and guidance is None:
        return None
    from himbench.guidance import GuidanceConfig, guidance_masks

    try:
        config = GuidanceConfig(perturb=guidance or "none", masks_dir=masks_dir)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--guidance") from err

    def masks_for(split: str, stem: str, shape: tuple[int, int], gt_alphas):
        if masks_dir is None and gt_alphas is None:
            from himbench.io import InputError

            raise InputError(stem, "--guidance needs ground truth: use a built shard folder, or --masks DIR")
        return guidance_masks(config, stem, gt_alphas, split, shape=shape)

    return masks_for


def _manifest(out: Path, inputs: tuple[str, ...], items, model, model_name: str, checkpoint: str, options: dict):
    """predictions.json: the source (a shard folder's path relative to OUT and its identity), model, weights;
    merged with the folder's existing manifest now, so that a refusal (another model) comes before any write."""
    from himbench.io import InputError
    from himbench.predictions.manifest import merged_manifest, new_manifest, shard_source
    from himbench.registry import config_to_dict
    from himbench.shards import ShardFolder

    shard_inputs = [raw for raw in inputs if ShardFolder.is_shard_folder(raw)]
    if len(inputs) == 1 and shard_inputs:
        source = shard_source(shard_inputs[0], out)
    else:
        source = {"kind": "images", "inputs": [str(Path(raw).resolve()) for raw in inputs]}
        from himbench.layouts import find_layout

        layouts = sorted({found.name for raw in inputs if (found := find_layout(raw, "images")) is not None})
        if layouts:  # benchmark folders: which layout each was read as (evaluate them with --gt)
            source["layouts"] = layouts
    splits = sorted({item[0] for item in items})
    options = {**options, "model_config": config_to_dict(model.config)}
    try:
        return merged_manifest(out, new_manifest(source, splits, model_name, checkpoint, options))
    except InputError as err:  # e.g. a mistyped predictions.json already in the folder: one line, exit 2
        raise UserError(str(err)) from err


def _stored_model_name(checkpoint: str) -> str:
    from himbench.checkpoints import read_checkpoint_config

    return str(read_checkpoint_config(checkpoint).get("model_name", "unknown"))
