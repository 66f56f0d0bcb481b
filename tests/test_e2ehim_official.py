"""e2ehim-official against the authors' released E2E-HIM code (tests/data/interop/README.md, e2ehim-official/).

The reference numbers were made by the authors' own inference code with the deterministic stand-in weights of
:mod:`interop_rule`; loading the same weights into :class:`E2EHIMOfficial` must give the same outputs. One 70 M
parameter model is built for the whole module (a 640 x 640 forward takes seconds on a CPU).
"""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest
import torch
from interop_rule import INTEROP, e2ehim_official_summary, e2ehim_pipeline_weights, load_manifest

from e2ehim import E2EHIMOfficial, E2EHIMOfficialConfig
from himbench.registry import apply_overrides, config_to_dict, list_models

DATA = INTEROP / "e2ehim-official"
MEAN = np.array([0.485, 0.456, 0.406], np.float32).reshape(3, 1, 1)
STD = np.array([0.229, 0.224, 0.225], np.float32).reshape(3, 1, 1)
# README "Tolerances to expect": mattes in [0, 1] around 1e-5 absolute, logits 1e-4 relative (plus an atol for logits
# near 0). The reference is itself a float32 run: this model in float64 differs from it by up to 1.1e-5 in alpha, so
# two float32 runs differ by up to ~2e-5 (measured here: 1.7e-5).
ALPHA_TOL = {"atol": 2e-5, "rtol": 1e-4}
LOGIT_TOL = {"atol": 1e-4, "rtol": 1e-4}
TIE_GAP = 1e-4  # trimap logits closer than the logit tolerance: float32 noise may flip their argmax


@pytest.fixture(scope="module")
def model():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    net = E2EHIMOfficial().eval()
    yield net
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def rule_weights(model, e2ehim_official_rule_weights):
    # Built once per run (conftest.py); the same keys and shapes as this module's network.
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    assert {key: value.shape for key, value in e2ehim_official_rule_weights.items()} == shapes
    return e2ehim_official_rule_weights


def _read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def _normalise(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy((rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0) - MEAN) / STD)


def test_state_dict_is_the_authors_key_for_key(model):
    manifest = load_manifest(DATA / "e2ehim_official_state_dict.json")
    state = model.state_dict()
    assert set(state) == {key for key, _, _ in manifest}
    for key, shape, dtype in manifest:
        assert tuple(state[key].shape) == shape, key
        assert str(state[key].dtype) == f"torch.{dtype}", key
    assert list(state) == [key for key, _, _ in manifest]  # the authors' order too
    assert sum(v.numel() for v in state.values() if v.is_floating_point()) == 70_453_544
    assert json.loads((DATA / "e2ehim_official_state_dict.json").read_text())["num_keys"] == len(state) == 649


def test_forward_reproduces_the_authors_vectors(model, rule_weights):
    model.load_state_dict(rule_weights)
    x = _normalise(_read_rgb(DATA / "input_640.png"))[None]
    with torch.no_grad():
        logits, alpha, trimap = model(x)
    assert logits.shape == (1, 20, 2) and alpha.shape == (1, 20, 640, 640) and trimap.shape == (1, 60, 640, 640)
    got = e2ehim_official_summary(logits, alpha, trimap)
    reference = np.load(DATA / "e2ehim_official_vectors.npz")
    assert set(reference.files) == set(got)
    for name in reference.files:
        tol = ALPHA_TOL if name.startswith("alpha") else LOGIT_TOL
        np.testing.assert_allclose(got[name].numpy(), reference[name], err_msg=name, **tol)


def _tie_neighbourhood(trimap_logits: torch.Tensor, height: int, width: int) -> np.ndarray:
    """Per query, the output pixels whose LANCZOS4 support (8 x 8 network pixels) holds a trimap near-tie.

    There the top two of the 3 logits are closer than the logit tolerance, so float32 noise (ours or that of the
    reference run) can flip the authors' argmax between unknown (alpha * 255) and foreground (255).
    """
    logits = trimap_logits.float().view(-1, 3, *trimap_logits.shape[-2:]).sort(1, descending=True).values
    ties = ((logits[:, 0] - logits[:, 1]) < TIE_GAP).numpy().astype(np.uint8)
    net_h, net_w = ties.shape[-2:]
    rows = np.clip(np.floor((np.arange(height) + 0.5) * net_h / height - 0.5).astype(int), 0, net_h - 1)
    cols = np.clip(np.floor((np.arange(width) + 0.5) * net_w / width - 0.5).astype(int), 0, net_w - 1)
    kernel = np.ones((8, 8), np.uint8)  # LANCZOS4 reads source pixels floor(s) - 3 .. floor(s) + 4
    near = [cv2.dilate(t, kernel, anchor=(3, 3), borderType=cv2.BORDER_CONSTANT, borderValue=0) for t in ties]
    return np.stack([n[np.ix_(rows, cols)] > 0 for n in near])


def test_pipeline_reproduces_the_authors_mattes(model, rule_weights):
    model.load_state_dict(e2ehim_pipeline_weights(rule_weights))
    image = _read_rgb(DATA / "pipeline" / "photo_720x540.png")
    captured = []
    hook = model.register_forward_hook(lambda module, args, out: captured.append(out))
    try:
        alphas, scores = model.predict_instances(image)
    finally:
        hook.remove()
    references = sorted((DATA / "pipeline").glob("[0-9][0-9].png"))
    assert len(references) == 20 and alphas.shape == (20, 540, 720) and alphas.dtype == np.float32
    assert scores.shape == (20,) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, torch.softmax(captured[0].person_logits[0], -1)[:, 1].numpy(), rtol=1e-6)
    mattes = np.rint(alphas * 255).astype(np.int16)
    assert np.array_equal(mattes.astype(np.float32) / 255, alphas)  # 8-bit mattes / 255, as the authors write
    near_tie = _tie_neighbourhood(captured[0].trimap_logits[0], 540, 720)
    identical = within_one = 0
    for k, path in enumerate(references):
        diff = np.abs(mattes[k] - cv2.imread(str(path), cv2.IMREAD_UNCHANGED).astype(np.int16))
        identical += int((diff == 0).sum())
        within_one += int((diff <= 1).sum())
        # Away from trimap near-ties only truncation flips remain (alpha * 255 at an integer boundary): <= 2 levels
        # after LANCZOS4 sums them; a larger gap there would be a real difference.
        assert diff[~near_tie[k]].max(initial=0) <= 2, (path.name, int(diff[~near_tie[k]].max()))
    total = mattes.size
    assert identical / total > 0.999 and within_one / total > 0.9995, (identical / total, within_one / total)


def test_batch_equals_single_images(model, rule_weights):
    model.load_state_dict(e2ehim_pipeline_weights(rule_weights))
    # 128 x 128 throughout: predict_batch below runs at input_size 128, so every forward has the same shapes.
    first = cv2.resize(_read_rgb(DATA / "input_640.png"), (128, 128), interpolation=cv2.INTER_AREA)
    second = cv2.resize(_read_rgb(DATA / "pipeline" / "photo_720x540.png"), (128, 128), interpolation=cv2.INTER_AREA)
    batch = torch.stack([_normalise(first), _normalise(second)])
    with torch.no_grad():
        both = model(batch)
        alone = [model(batch[i : i + 1]) for i in range(2)]
    for i in range(2):
        for name, tol in (("person_logits", LOGIT_TOL), ("alpha", ALPHA_TOL), ("trimap_logits", LOGIT_TOL)):
            together, single = getattr(both, name)[i].numpy(), getattr(alone[i], name)[0].numpy()
            np.testing.assert_allclose(together, single, err_msg=f"{name}[{i}]", **tol)
    assert not torch.allclose(both.alpha[0], both.alpha[1])  # two different images, two different answers
    saved = model.config
    model.config = dataclasses.replace(saved, input_size=128)
    try:
        batched = model.predict_batch([first, second[:100]])
        singles = [model.predict_instances(first), model.predict_instances(second[:100])]
    finally:
        model.config = saved
    shapes = [(128, 128), (100, 128)]
    for (alphas_b, scores_b), (alphas_s, scores_s), shape in zip(batched, singles, shapes, strict=True):
        assert alphas_b.shape[1:] == shape and len(alphas_b) == len(alphas_s) > 0
        np.testing.assert_allclose(scores_b, scores_s, atol=1e-6)
        assert (np.abs(alphas_b - alphas_s) > 1.5 / 255).mean() < 1e-3  # only trimap near-ties may flip


def test_any_size_and_aspect(model, rule_weights):
    model.load_state_dict(e2ehim_pipeline_weights(rule_weights))
    image = _read_rgb(DATA / "input_640.png")
    # Non-square: a multiple of 32, and a size padded inside (to 96 x 128) and cropped back.
    for height, width in ((352, 224), (70, 100)):
        x = _normalise(cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA))[None]
        with torch.no_grad():
            logits, alpha, trimap = model(x)
        assert logits.shape == (1, 20, 2) and alpha.shape == (1, 20, height, width)
        assert trimap.shape == (1, 60, height, width)
        assert torch.isfinite(trimap).all() and 0 <= alpha.min() and alpha.max() <= 1
    saved = model.config
    model.config = dataclasses.replace(saved, input_size=128, resize="long_side")  # 300 x 500 -> 77 x 128
    try:
        alphas, scores = model.predict_instances(np.ascontiguousarray(image[:300, :500]))
    finally:
        model.config = saved
    assert alphas.dtype == np.float32 and alphas.shape[1:] == (300, 500) and scores.shape == (len(alphas),)
    assert len(alphas) > 0 and 0 <= alphas.min() and alphas.max() <= 1


def test_protocol_registry_and_release_info(model):
    with pytest.raises(NotImplementedError, match="e2ehim-tiny"):
        model.training_loss({})
    assert "e2ehim-official" in list_models()
    config = config_to_dict(model.config)
    assert json.loads(json.dumps(config)) == config
    assert apply_overrides(E2EHIMOfficialConfig(), config) == model.config
    assert model.config.input_size == 640 and model.config.min_sum == 1000.0 and model.config.resize == "authors"
    with pytest.raises(ValueError, match="resize"):
        E2EHIMOfficial(E2EHIMOfficialConfig(resize="stretch"))
    released = E2EHIMOfficial.released_weights
    assert released.filename == "swintiny.ckpt" and released.requires_weights
    assert "noncommercial" in released.license and released.code.endswith("aipixel/E2E-HIM")
