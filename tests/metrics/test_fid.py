"""FID / KID through clean-fid, with a tiny random feature extractor injected through the real code path.

The real Inception weights cannot be downloaded here; the tests check the numbers against clean-fid's own
functions on the same features, the reference cache, the modes' resizing, and the skip without weights.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from cleanfid import fid as cleanfid_fid
from cleanfid import inception_pytorch
from cleanfid.resize import build_resizer
from PIL import Image
from torch import Tensor, nn

from midms.errors import MetricSkipped, UserError
from midms.metrics import inception
from midms.metrics.base import EvalContext
from midms.metrics.fid import FID, KID, files_features, frechet_distance

SIZE = 32
N_FAKE, N_REAL = 12, 16  # more images than feature dimensions (8): full-rank covariances


class CountingNet:
    """A tiny random conv net taking clean-fid's input (float B×3×H×W in [0, 255]); counts the images it sees."""

    def __init__(self, dim: int = 8, seed: int = 0, keep_inputs: bool = False) -> None:
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 8, stride=8), nn.ReLU(), nn.Conv2d(8, dim, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        ).eval()
        self.seen = 0
        self.keep_inputs = keep_inputs
        self.inputs: list[Tensor] = []

    def __call__(self, x: Tensor) -> Tensor:
        self.seen += x.shape[0]
        if self.keep_inputs:
            self.inputs.append(x.clone())
        return 100 * self.net(x / 255.0)  # scaled so that distances are O(1) and above round-off


def write_images(folder: Path, n: int, seed: int, size: int = SIZE, fmt: str = "png", offset: float = 0.0) -> Path:
    """Smooth random colour images (upsampled noise), so that features vary between images."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        low = (rng.random((4, 4, 3)) * 200 + offset).clip(0, 255).astype(np.uint8)
        Image.fromarray(low).resize((size, size), Image.BICUBIC).save(folder / f"{i:04d}.{fmt}")
    return folder


def make_ctx(tmp: Path, samples: Path, **kw) -> EvalContext:
    fields = dict(
        samples_dir=samples,
        reference_dir=tmp / "reference",
        cache_dir=tmp / "cache",
        dataset_key="fake-celebahq_test_32_pairs-v1",
        image_size=SIZE,
    )
    fields.update(kw)
    return EvalContext(**fields)


@pytest.fixture()
def folders(tmp_path: Path) -> tuple[Path, Path]:
    fake = write_images(tmp_path / "samples", N_FAKE, seed=1, offset=40)
    write_images(tmp_path / "reference" / "image", N_REAL, seed=2)
    return tmp_path, fake


def score(cls, fake: Path, real: Path, tmp: Path, **ctx_kw) -> float:
    """One metric of the folder ``fake`` against the real images of ``real``, as an evaluation computes it."""
    reference = tmp / f"ref-{real.name}"
    if not (reference / "image").exists():
        reference.mkdir()
        (reference / "image").symlink_to(real, target_is_directory=True)
    ctx = make_ctx(tmp, fake, reference_dir=reference, **ctx_kw)
    m = cls(feature_extractor=CountingNet(), feature_extractor_id="tiny", num_workers=0, progress=False)
    m.setup(ctx)
    return m.compute(ctx)[m.name]


def metric(cls=FID, net: CountingNet | None = None, **kw):
    return cls(
        feature_extractor=net or CountingNet(), feature_extractor_id="tiny-conv-seed0", num_workers=0,
        progress=False, batch_size=8, **kw,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ distances


def test_frechet_distance_matches_scipy_sqrtm() -> None:
    rng = np.random.default_rng(0)
    d = 16
    for _ in range(3):
        a, b = rng.normal(size=(d, 3 * d)), rng.normal(size=(d, 3 * d))
        s1, s2 = a @ a.T / (3 * d), b @ b.T / (3 * d) + 0.1 * np.eye(d)
        m1, m2 = rng.normal(size=d), rng.normal(size=d)
        covmean = scipy.linalg.sqrtm(s1 @ s2).real
        expected = np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
        assert expected > 1.0
        assert frechet_distance(m1, s1, m2, s2) == pytest.approx(expected, rel=1e-9)
    # rank-deficient covariances (fewer samples than dimensions), as with N < 2048 Inception features
    x, y = rng.normal(size=(10, d)), rng.normal(size=(10, d)) + 0.5
    mx, my, cx, cy = x.mean(0), y.mean(0), np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    assert frechet_distance(mx, cx, my, cy) == pytest.approx(cleanfid_fid.frechet_distance(mx, cx, my, cy), rel=1e-6)
    assert frechet_distance(mx, cx, mx, cx) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError):
        frechet_distance(mx, cx, my[:-1], cy[:-1, :-1])


# ------------------------------------------------------------------------------ against clean-fid itself


def test_fid_and_kid_equal_cleanfid_on_the_same_features(folders) -> None:
    tmp, fake = folders
    ctx = make_ctx(tmp, fake, seed=3)
    net = CountingNet()
    fid, kid = metric(FID, net), metric(KID, net)
    fid.setup(ctx)
    kid.setup(ctx)
    got_fid, got_kid = fid.compute(ctx)["fid"], kid.compute(ctx)["kid"]

    # independently: clean-fid's own folder reader, resizer and batching, then its own distances
    cpu = torch.device("cpu")
    kw = dict(model=CountingNet(), num_workers=0, batch_size=8, device=cpu, mode="clean", verbose=False)
    f_fake = cleanfid_fid.get_folder_features(str(fake), **kw)
    f_real = cleanfid_fid.get_folder_features(str(tmp / "reference" / "image"), **kw)
    want_fid = cleanfid_fid.frechet_distance(
        f_fake.mean(0), np.cov(f_fake, rowvar=False), f_real.mean(0), np.cov(f_real, rowvar=False)
    )
    np.random.seed(3)
    want_kid = cleanfid_fid.kernel_distance(f_fake, f_real)

    assert want_fid > 0.01  # the folders differ: a vacuous 0 = 0 would not test anything
    assert got_fid == pytest.approx(want_fid, rel=1e-6)
    assert got_kid == pytest.approx(want_kid, rel=1e-6, abs=1e-9)
    assert kid.compute(ctx)["kid"] == got_kid  # seeded: reproducible
    # one evaluation reads each folder once for both metrics
    assert net.seen == N_FAKE + N_REAL
    assert fid.higher_is_better is False and kid.higher_is_better is False
    assert fid.protocol["mode"] == "clean" and fid.protocol["num_generated"] == N_FAKE
    assert fid.protocol["num_reference"] == N_REAL and fid.protocol["image_format"] == "png"
    assert kid.protocol["seed"] == 3


def test_identical_folders_give_zero(folders) -> None:
    tmp, fake = folders
    copy = tmp / "copy"
    shutil.copytree(fake, copy)
    real = tmp / "reference" / "image"
    assert score(FID, fake, copy, tmp) == pytest.approx(0.0, abs=1e-6)
    assert score(FID, fake, real, tmp) > 0.01
    # KID's unbiased estimate is not exactly 0 on identical sets (it can be negative); it must rank them first
    assert score(KID, fake, copy, tmp) < score(KID, fake, real, tmp)


# --------------------------------------------------------------------------------------------- caching


def test_reference_stats_cached_and_keyed_by_protocol(folders) -> None:
    tmp, fake = folders
    stats_dir = tmp / "cache" / "fid_stats"
    net = CountingNet()

    def evaluate(**kw) -> tuple[float, int, dict]:
        seen = net.seen
        metric_kw = {k: kw.pop(k) for k in ("mode", "num_reference") if k in kw}
        ctx = make_ctx(tmp, fake, **kw)  # a fresh context = a new evaluation
        m = metric(FID, net, **metric_kw)
        m.setup(ctx)
        return m.compute(ctx)["fid"], net.seen - seen, m.protocol

    first, seen1, info1 = evaluate()
    assert seen1 == N_FAKE + N_REAL and info1["reference_stats_cached"] is False
    assert [p.suffix for p in stats_dir.iterdir()] == [".npz"]  # written atomically: no temp file left
    second, seen2, info2 = evaluate()
    assert seen2 == N_FAKE  # only the generated images: the reference statistics came from disk
    assert info2["reference_stats_cached"] is True and second == pytest.approx(first, rel=1e-12)

    changes = [dict(mode="legacy_pytorch"), dict(image_size=24), dict(dataset_key="other"), dict(num_reference=10)]
    for i, change in enumerate(changes):
        _, seen, info = evaluate(**dict(change))
        n_ref = change.get("num_reference", N_REAL)
        assert seen == N_FAKE + n_ref, change  # recomputed ...
        assert info["reference_stats_cached"] is False and info["num_reference"] == n_ref
        assert len(list(stats_dir.glob("*.npz"))) == 2 + i, change  # ... into a new entry
    assert evaluate(mode="legacy_pytorch")[1] == N_FAKE  # and each entry is reused in turn


def test_other_pictures_under_the_same_names_and_sizes_get_new_statistics(folders) -> None:
    tmp, fake = folders
    real = tmp / "reference" / "image"
    bmp = tmp / "bmp"  # uncompressed: other pixels, the same file names and byte sizes
    for p in sorted(real.glob("*.png")):
        bmp.mkdir(exist_ok=True)
        Image.open(p).save(bmp / f"{p.stem}.bmp")
    before = {p.name: p.stat().st_size for p in bmp.iterdir()}
    first = score(FID, fake, bmp, tmp, dataset_key="same-key")
    for p in bmp.iterdir():
        pixels = np.asarray(Image.open(p))
        Image.fromarray(255 - pixels).save(p)  # inverted pictures
    assert {p.name: p.stat().st_size for p in bmp.iterdir()} == before
    second = score(FID, fake, bmp, tmp, dataset_key="same-key")
    assert second != pytest.approx(first, rel=1e-6)
    assert len(list((tmp / "cache" / "fid_stats").glob("*.npz"))) == 2


def test_inception_weights_are_identified_by_their_sha256(tmp_path: Path) -> None:
    from midms.weights import file_sha256

    a, b = tmp_path / "a.pt", tmp_path / "b.pt"
    a.write_bytes(b"x" * 1000)
    b.write_bytes(b"y" * 1000)  # the same name and size as a once renamed: only the content tells them apart
    assert file_sha256(a) == hashlib.sha256(b"x" * 1000).hexdigest() != file_sha256(b)


def test_image_format_is_recorded_and_its_comparability_warned(tmp_path: Path, caplog) -> None:
    fake = write_images(tmp_path / "samples", 6, seed=1, fmt="jpg")
    write_images(tmp_path / "reference" / "image", 6, seed=2)
    ctx = make_ctx(tmp_path, fake, image_format="jpg")
    m = metric()
    with caplog.at_level("WARNING", logger="midms.metrics.fid"):
        m.setup(ctx)
    assert "outputs saved as .jpg: FID not comparable with numbers measured on .png outputs" in caplog.text
    assert m.compute(ctx)["fid"] >= 0
    assert m.protocol["image_format"] == "jpg" and "image_format_found" not in m.protocol
    m.compute(make_ctx(tmp_path, fake, image_format="png"))
    assert m.protocol["image_format_found"] == "jpg"


# ------------------------------------------------------------------------------------------ resizing


def test_modes_resize_differently(folders) -> None:
    tmp, fake = folders
    files = sorted(fake.iterdir())[:2]
    inputs = {}
    for mode in inception.MODES:
        net = CountingNet(keep_inputs=True)
        files_features(files, net, mode=mode, image_size=SIZE, batch_size=2, progress=False)
        inputs[mode] = net.inputs[0]
    raw = np.array(Image.open(files[0]).convert("RGB"))
    clean = torch.from_numpy(build_resizer("clean")(raw).transpose(2, 0, 1).copy())
    assert inputs["clean"].shape == inputs["legacy_pytorch"].shape == (2, 3, 299, 299)
    assert torch.equal(inputs["clean"][0], clean)  # clean-fid's float PIL-bicubic resize, bit for bit
    assert (inputs["clean"] - inputs["legacy_pytorch"]).abs().max() > 1.0  # bilinear, aliased: not the same
    assert inputs["legacy_tensorflow"].shape == (2, 3, SIZE, SIZE)  # the network resizes inside
    assert torch.equal(inputs["legacy_tensorflow"][0], torch.from_numpy(raw).permute(2, 0, 1).float())


# ------------------------------------------------------------------------------------------- weights


@pytest.fixture()
def no_network(monkeypatch, tmp_path: Path) -> Path:
    """Empty weights locations, and any download attempt fails the test instead of hanging."""

    def forbidden(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(inception, "CLEANFID_INCEPTION_DIR", tmp_path / "cleanfid_tmp")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setattr(urllib.request, "urlopen", forbidden)
    monkeypatch.setattr(inception_pytorch, "load_state_dict_from_url", forbidden)
    monkeypatch.setattr(torch.hub, "download_url_to_file", forbidden)
    return tmp_path


@pytest.mark.parametrize(
    ("mode", "file", "folder"),
    [
        ("clean", "inception-2015-12-05.pt", "cleanfid_tmp"),
        ("legacy_tensorflow", "inception-2015-12-05.pt", "cleanfid_tmp"),
        ("legacy_pytorch", "pt_inception-2015-12-05-6726825d.pth", "torch_home/hub/checkpoints"),
    ],
)
def test_setup_skips_without_weights(no_network: Path, mode: str, file: str, folder: str) -> None:
    ctx = make_ctx(no_network, no_network / "samples")
    start = time.perf_counter()
    with pytest.raises(MetricSkipped) as err:
        FID(mode=mode).setup(ctx)
    msg = str(err.value)
    assert file in msg and str(no_network / folder) in msg
    assert "Fix: download https://" in msg and f"{no_network / folder / file}" in msg
    assert "metrics.fid.weights=" in msg
    assert time.perf_counter() - start < 5
    with pytest.raises(MetricSkipped, match="does-not-exist.pt"):
        KID(mode=mode, weights=str(no_network / "does-not-exist.pt")).setup(ctx)


class _FakeTorchscriptInception(nn.Module):
    """Same interface as clean-fid's ``inception-2015-12-05.pt``: ``.layers`` and ``forward(x, return_features)``."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(3, 4, 16, stride=16), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2048)
        )

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor:
        x = nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        return self.layers((x - 128) / 128)


@pytest.mark.filterwarnings("ignore:`torch.jit")
@pytest.mark.parametrize(
    ("mode", "where"),
    [("clean", "explicit"), ("clean", "explicit-other-name"), ("legacy_tensorflow", "cache-dir")],
)
def test_weights_file_is_loaded_without_network(no_network: Path, mode: str, where: str) -> None:
    """The real loading path of clean-fid's torchscript wrapper, fed a (random) stand-in file."""
    tmp = no_network
    torch.manual_seed(0)
    target = {
        "explicit": tmp / "w" / "inception-2015-12-05.pt",
        "explicit-other-name": tmp / "w" / "my-inception.pt",
        "cache-dir": tmp / "cache" / "weights" / "inception-2015-12-05.pt",
    }[where]
    target.parent.mkdir(parents=True)
    torch.jit.script(_FakeTorchscriptInception()).save(str(target))
    fake = write_images(tmp / "samples", 5, seed=1)
    write_images(tmp / "reference" / "image", 5, seed=2)
    ctx = make_ctx(tmp, fake)
    # KID rather than FID: a 2048×2048 eigendecomposition would cost seconds on a small CPU
    m = KID(mode=mode, weights=None if where == "cache-dir" else str(target), num_workers=0, progress=False)
    m.setup(ctx)
    value = m.compute(ctx)["kid"]
    assert np.isfinite(value)  # KID is an unbiased estimate: it may be slightly negative
    assert m.protocol["weights"] == str(target) and m.protocol["feature_extractor"].startswith("inception:")


@pytest.mark.slow  # a real-size InceptionV3 forward: ~2 s on a quiet 2-core CPU, far more on a busy one
@pytest.mark.filterwarnings("ignore")
def test_pytorch_fid_weights_file_is_loaded_without_network(no_network: Path, monkeypatch, trust_weights) -> None:
    """legacy_pytorch: clean-fid's pytorch-fid InceptionV3, its state dict read from a local (random) file."""
    import torchvision

    with monkeypatch.context() as m:  # a random-weights stand-in with the real architecture and keys
        m.setattr(inception_pytorch, "load_state_dict_from_url", lambda *a, **k: {})
        m.setattr(torchvision.models.Inception3, "load_state_dict", lambda self, *a, **k: None)
        state = inception_pytorch.fid_inception_v3().state_dict()
    target = no_network / "w" / "pt_inception-2015-12-05-6726825d.pth"
    target.parent.mkdir()
    torch.save(state, target)
    trust_weights(target)
    fake = write_images(no_network / "samples", 2, seed=1)
    write_images(no_network / "reference" / "image", 2, seed=2)
    ctx = make_ctx(no_network, fake)
    kid = KID(mode="legacy_pytorch", weights=str(target), num_workers=0, progress=False)
    kid.setup(ctx)
    assert np.isfinite(kid.compute(ctx)["kid"])
    assert kid.protocol["feature_extractor"].startswith("inception:pt_inception")
    assert inception_pytorch.load_state_dict_from_url.__name__ == "forbidden"  # the swap was undone


def test_bad_mode_is_a_user_error() -> None:
    with pytest.raises(UserError, match="legacy_pytorch"):
        FID(mode="tensorflow")
    with pytest.raises(ValueError, match="feature_extractor_id"):
        FID(feature_extractor=CountingNet())


@pytest.mark.parametrize("mode", ["clean", "legacy_pytorch"])
def test_features_of_decoded_images_equal_those_of_the_files(tmp_path, mode):
    """Scoring decodes each file once and FID takes the decoded images: clean-fid's own reading of the files gives
    the same features to the last bit (the images at another size are brought to the protocol's first, as there)."""
    from midms.imageio import load_image
    from midms.metrics.fid import _ToSize, decoded_features

    files = sorted(write_images(tmp_path / "a", 5, seed=3, size=40).glob("*.png"))
    from_files = cleanfid_fid.get_files_features([str(f) for f in files], model=CountingNet(), num_workers=0,
                                                 batch_size=2, device=torch.device("cpu"), mode=mode, verbose=False,
                                                 custom_image_tranform=_ToSize(SIZE))  # fmt: skip
    kw = {"mode": mode, "image_size": SIZE, "batch_size": 2, "progress": False}
    decoded = decoded_features([np.asarray(load_image(f)) for f in files], CountingNet(), **kw)
    assert from_files.shape == (5, 8) and np.array_equal(decoded, from_files)
