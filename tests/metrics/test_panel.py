"""The panel preset: DINOv2 / CLIP feature spaces (tiny random networks through the real loading path), the
Fréchet distances, CMMD and precision/recall/density/coverage against direct implementations of their formulas."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from midms.errors import MetricSkipped, UserError
from midms.evaluation.score_folders import build_metrics, load_preset
from midms.metrics import feature_spaces
from midms.metrics.base import EvalContext, SharedFeatures
from midms.metrics.fid import frechet_distance
from midms.metrics.panel import CMMD, PRDC, FrechetDistance, cmmd

SIZE = 32


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """Randomly initialised DINOv2 and CLIP vision towers saved as Hugging Face folders (safetensors)."""
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    small = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, patch_size=14)
    Dinov2Model(Dinov2Config(image_size=224, **small)).save_pretrained(root / "dinov2")
    CLIPVisionModelWithProjection(CLIPVisionConfig(image_size=336, projection_dim=8, **small)).save_pretrained(
        root / "clip"
    )
    return {"dinov2": root / "dinov2", "clip": root / "clip"}


def _images(folder, n, seed, shift=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        array = np.clip(rng.integers(0, 200, (SIZE, SIZE, 3)) + shift, 0, 255).astype(np.uint8)
        Image.fromarray(array).save(folder / f"img_{i:03d}.png")
    return folder


@pytest.fixture()
def ctx(tmp_path):
    samples = _images(tmp_path / "samples", 7, seed=1, shift=50)
    _images(tmp_path / "reference" / "image", 9, seed=2)
    return EvalContext(samples_dir=samples, reference_dir=tmp_path / "reference", cache_dir=tmp_path / "cache",
                       dataset_key="tiny-test", image_size=SIZE, num_images=7)  # fmt: skip


def _direct_features(folder, model_fn):
    paths = sorted(folder.glob("*.png"))
    return np.concatenate([model_fn(np.asarray(Image.open(p))) for p in paths])


def test_dinov2_features_are_the_cls_token_of_the_pil_bicubic_224_imagenet_normalised_image(tiny_weights):
    from transformers import Dinov2Model

    embedder = feature_spaces.load_embedder("dinov2_vitl14", str(tiny_weights["dinov2"]), None, "cpu")
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3)).astype(np.uint8)
    got = embedder.embed(torch.from_numpy(image).permute(2, 0, 1)[None])
    # independently: PIL bicubic to 224, [0, 1], ImageNet mean/std (dgm-eval), the model's normed CLS token
    x = np.asarray(Image.fromarray(image).resize((224, 224), Image.BICUBIC), np.float32) / 255
    x = (x - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    model = Dinov2Model.from_pretrained(tiny_weights["dinov2"]).eval()
    with torch.no_grad():
        hidden = model(pixel_values=torch.from_numpy(x).permute(2, 0, 1)[None].float()).last_hidden_state
    want = hidden[:, 0]  # HF's last_hidden_state is after the final layer norm: the hub model's x_norm_clstoken
    assert got.shape == (1, 16)
    np.testing.assert_allclose(got, want.double().numpy(), rtol=1e-5, atol=1e-6)
    assert embedder.identity.startswith("dinov2_vitl14:facebook/dinov2-large:sha256:")


def test_clip_embeddings_are_unit_norm_projections_of_the_bicubic_336_image(tiny_weights):
    from transformers import CLIPVisionModelWithProjection

    embedder = feature_spaces.load_embedder("clip_vitl14_336", str(tiny_weights["clip"]), None, "cpu")
    images = torch.randint(0, 256, (2, 3, SIZE, SIZE), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    got = embedder.embed(images)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=1e-6)
    x = torch.nn.functional.interpolate(images.float() / 255, size=(336, 336), mode="bicubic", align_corners=False)
    # CLIP's mean and std (openai/CLIP clip.py _transform)
    x = (x - torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711]
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        e = CLIPVisionModelWithProjection.from_pretrained(tiny_weights["clip"]).eval()(pixel_values=x).image_embeds
    np.testing.assert_allclose(got, (e / e.norm(dim=-1, keepdim=True)).double().numpy(), rtol=1e-4, atol=1e-6)
    assert np.array_equal(got, embedder.embed(images))  # deterministic


def test_absent_weights_are_a_skip_naming_the_folder_and_the_hub_id(tmp_path):
    with pytest.raises(MetricSkipped) as e:
        feature_spaces.load_embedder("dinov2_vitl14", None, tmp_path, "cpu")
    message = str(e.value)
    assert "facebook/dinov2-large" in message and str(tmp_path / "weights" / "facebook--dinov2-large") in message


def test_cmmd_is_the_reference_formula():
    # CMMD (Jayasumana et al., CVPR 2024; google-research cmmd/distance.py): sigma 10, scale 1000, kernel means
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(5, 3)) * 8, rng.normal(size=(4, 3)) * 8 + 3

    def k(a, b):
        return np.exp(-np.sum((a - b) ** 2) / (2 * 10.0**2))

    def mean_k(a, b):
        return np.mean([[k(p, q) for q in b] for p in a])

    want = 1000 * (mean_k(x, x) + mean_k(y, y) - 2 * mean_k(x, y))
    assert cmmd(x, y) == pytest.approx(want, rel=1e-10) and want > 1
    assert cmmd(x, x) == pytest.approx(0.0, abs=1e-9)


def _prdc_by_hand(real, fake, k):
    """Kynkäänniemi et al. (2019) and Naeem et al. (2020), eqs. of the papers, with plain loops."""

    def dist(a, b):
        return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))

    rr, ff, rf = dist(real, real), dist(fake, fake), dist(real, fake)
    radius_r = np.sort(rr, axis=1)[:, k]  # k-th neighbour, the point itself at index 0
    radius_f = np.sort(ff, axis=1)[:, k]
    inside = rf < radius_r[:, None]  # real i's ball holds fake j
    precision = np.mean([inside[:, j].any() for j in range(len(fake))])
    recall = np.mean([(rf[i] < radius_f).any() for i in range(len(real))])
    density = inside.sum() / (k * len(fake))
    coverage = np.mean([rf[i].min() < radius_r[i] for i in range(len(real))])
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def test_the_metrics_on_folders_equal_their_formulas_on_independently_computed_features(tiny_weights, ctx):
    weights = str(tiny_weights["dinov2"])
    embedder = feature_spaces.load_embedder("dinov2_vitb14", weights, None, "cpu")

    def features(array):
        return embedder.embed(torch.from_numpy(array).permute(2, 0, 1)[None])

    fake = _direct_features(ctx.samples_dir, features)
    real = _direct_features(ctx.reference_dir / "image", features)
    fd = FrechetDistance("fd_dinov2", space="dinov2_vitb14", weights=weights, bootstrap=5)
    prdc = PRDC("prdc", space="dinov2_vitb14", weights=weights, k=3)
    fd.setup(ctx)
    prdc.setup(ctx)
    values = fd.compute(ctx)
    want = frechet_distance(fake.mean(0), np.cov(fake, rowvar=False), real.mean(0), np.cov(real, rowvar=False))
    assert values["fd_dinov2"] == pytest.approx(want, rel=1e-6) and values["fd_dinov2_ci95"] > 0
    assert fd.protocol["num_generated"] == 7 and fd.protocol["num_reference"] == 9
    assert fd.protocol["stable_min_images"] == 16  # the feature dimension: fewer images, a rank-deficient covariance
    assert fd.protocol["weights"] == embedder.identity and fd.protocol["reference_features_cached"] is False
    got = prdc.compute(ctx)
    by_hand = _prdc_by_hand(real, fake, 3)
    assert got == pytest.approx(by_hand, rel=1e-9)
    assert got["precision"] < 1 or got["recall"] < 1  # the sets differ: not a vacuous 1 = 1


def test_reference_features_are_cached_by_content_and_reused(tiny_weights, ctx, monkeypatch):
    weights = str(tiny_weights["clip"])
    first = CMMD("cmmd", weights=weights, bootstrap=4)
    first.setup(ctx)
    value = first.compute(ctx)["cmmd"]
    assert first.protocol["sigma"] == 10.0 and first.protocol["scale"] == 1000.0
    calls = []
    real_fn = feature_spaces.folder_features
    monkeypatch.setattr(feature_spaces, "folder_features", lambda *a, **kw: calls.append(a[1]) or real_fn(*a, **kw))
    # a new evaluation: nothing shared, the disk cache is there
    again = EvalContext(**{**ctx.__dict__, "features": SharedFeatures()})
    second = CMMD("cmmd", weights=weights, bootstrap=4)
    second.setup(again)
    assert second.compute(again)["cmmd"] == pytest.approx(value, rel=1e-12)
    # the real side is read from the disk cache, not recomputed
    assert calls == [] and second.protocol["reference_features_cached"] is True
    # another picture under the same name is another entry
    path = ctx.reference_dir / "image" / "img_000.png"
    Image.fromarray(np.zeros((SIZE, SIZE, 3), np.uint8)).save(path)
    third_ctx = EvalContext(**{**ctx.__dict__, "features": SharedFeatures()})
    third = CMMD("cmmd", weights=weights, bootstrap=0)
    third.setup(third_ctx)
    assert third.compute(third_ctx)["cmmd"] != pytest.approx(value)
    assert third.protocol["reference_features_cached"] is False


def test_the_panel_preset_adds_the_new_metrics_to_the_papers_set():
    default, panel = set(load_preset("default")), set(load_preset("panel"))
    assert default < panel and panel - default == {"fd_dinov2", "fd_clip", "cmmd", "prdc"}
    metrics = build_metrics(["fd_dinov2", "cmmd", "prdc"], "panel")
    assert isinstance(metrics["fd_dinov2"], FrechetDistance) and metrics["fd_dinov2"].space == "dinov2_vitl14"
    assert metrics["cmmd"].space == "clip_vitl14_336" and metrics["prdc"].k == 5  # Naeem et al.: k = 5
    with pytest.raises(UserError, match="--preset panel"):  # midms-eval names the preset that has them
        build_metrics(["cmmd"], "default")
