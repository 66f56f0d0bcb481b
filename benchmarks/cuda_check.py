"""The released models and the shipped model on a CUDA GPU: do they give the authors' numbers there too?

The test suite runs on the CPU (CI has no GPU). This script repeats the interop comparisons on ``--device`` (fp32
with TF32 off, then fp16/bf16 autocast as `himbench predict` uses it) and prints the largest differences from the
authors' reference vectors, plus a CPU-versus-GPU comparison of e2ehim-tiny's predictions, as one JSON object.

    python benchmarks/cuda_check.py --device cuda --out benchmarks/results/cuda_check.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the interop stand-in weights live with the tests


def _max_diffs(got: dict, reference) -> dict[str, float]:
    return {name: float(np.abs(np.asarray(got[name], np.float64) - reference[name]).max()) for name in reference.files}


def _precisions(device: str, half: tuple) -> list[tuple[str, object]]:
    """fp32, then each half-precision autocast dtype (on CUDA only)."""
    names = {"torch.float16": "fp16", "torch.bfloat16": "bf16"}
    return [("fp32", None)] + ([(names[str(d)], d) for d in half] if device.startswith("cuda") else [])


def check_e2ehim_official(device: str) -> dict:
    import torch
    from interop_rule import INTEROP, e2ehim_official_summary, rule_state_dict

    from e2ehim import E2EHIMOfficial
    from himbench.io import read_image

    data = INTEROP / "e2ehim-official"
    torch.manual_seed(0)
    model = E2EHIMOfficial().eval()
    model.load_state_dict(rule_state_dict(model.state_dict()))
    model = model.to(device)
    mean = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
    std = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
    rgb = read_image(data / "input_640.png")
    x = torch.from_numpy((rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0) - mean) / std)[None].to(device)
    reference = np.load(data / "e2ehim_official_vectors.npz")
    result = {}
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for label, dtype in _precisions(device, (torch.float16, torch.bfloat16)):
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
            sync()
            start = time.perf_counter()
            logits, alpha, trimap = model(x)
            sync()
            seconds = time.perf_counter() - start
        got = e2ehim_official_summary(logits, alpha, trimap)
        got = {k: v.cpu().numpy() for k, v in got.items()}
        result[label] = {"max_abs_diff": _max_diffs(got, reference), "forward_s": round(seconds, 4)}
    return result


def check_mgm(device: str) -> dict:
    import cv2
    import torch
    import torch.nn.functional as F
    from interop_rule import INTEROP, mgm_rule_state_dict

    from baselines.mgm import OUTPUT_KEYS, MGMatting
    from baselines.refiner import normalise_image
    from himbench.io import read_image

    data = INTEROP / "mgmatting"
    net = MGMatting().eval()
    net.load_state_dict(mgm_rule_state_dict(net.state_dict()), strict=True)
    net = net.to(device)
    image = read_image(data / "input_512.png")
    guidance = cv2.imread(str(data / "guidance_512.png"), cv2.IMREAD_GRAYSCALE) >= 128
    x = normalise_image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255.0)
    m = torch.from_numpy(guidance.astype(np.float32))[None, None]
    reference = np.load(data / "mgm_vectors.npz")
    result = {}
    for label, dtype in _precisions(device, (torch.float16,)):
        with torch.no_grad(), torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
            outputs = net(x.to(device), m.to(device))
        got = {}
        for key in OUTPUT_KEYS:
            alpha = outputs[key].float().cpu()
            got[f"{key}_pooled8"] = F.avg_pool2d(alpha, 8)[0, 0].numpy()
            got[f"{key}_crop"] = alpha[0, 0, 200:264, 200:264].numpy()
            got[f"{key}_mean"] = alpha.mean().numpy()
        result[label] = {"max_abs_diff": {k: v for k, v in _max_diffs(got, reference).items() if k in got}}
    return result


def check_shipped(device: str, data: str | None) -> dict:
    """e2ehim-tiny with its shipped weights: the same mattes on CPU and on the GPU?"""
    from himbench.methods import create_method

    if data is None:
        return {}
    from itertools import islice

    from himbench.shards import read_split

    cpu = create_method("e2ehim-tiny", device="cpu")
    gpu = create_method("e2ehim-tiny", device=device)
    worst, counts = 0.0, []
    for sample in islice(read_split(data, "test"), 8):
        a, b = cpu.predict(sample.image), gpu.predict(sample.image)
        counts.append((a.num_instances, b.num_instances))
        if a.num_instances == b.num_instances and a.num_instances:
            worst = max(worst, float(np.abs(a.alphas - b.alphas).max()))
    return {"instances_cpu_gpu": counts, "max_abs_alpha_diff": worst}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--data", default=None, help="built shard folder for the shipped-model comparison")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 rows compare arithmetic, not TF32's 10-bit mantissa
    torch.backends.cudnn.allow_tf32 = False
    report = {
        "device": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "torch": torch.__version__,
        "e2ehim-official": check_e2ehim_official(args.device),
        "mgm": check_mgm(args.device),
        "e2ehim-tiny": check_shipped(args.device, args.data),
    }
    text = json.dumps(report, indent=1)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
