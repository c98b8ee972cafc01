"""The evaluator: saved images, metric values on exactly those images, skipped and failed metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from midms.data.contract import DataSpec
from midms.data.synthetic import SyntheticPairs
from midms.errors import MetricSkipped
from midms.evaluation.evaluator import evaluate
from midms.evaluation.scoring import score_folder
from midms.evaluation.translate import sample_names
from midms.metrics.base import EvalBatch, EvalContext, Metric
from midms.metrics.pixel import PSNR, SSIM
from midms.models.copy_exemplar import CopyExemplar


def _setup(tmp_path, image_size=32, n=10):
    ds = SyntheticPairs("test", image_size=image_size, sizes={"test": n})
    return ds, CopyExemplar(ds.spec), DataLoader(ds, batch_size=4)


def _read(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float64) / 255.0


def test_psnr_of_copy_exemplar_equals_numpy_on_saved_pngs(tmp_path):
    ds, model, loader = _setup(tmp_path)
    out = evaluate(
        model, loader, {"psnr": PSNR(), "ssim": SSIM()}, tmp_path / "run", tmp_path / "cache", ds.dataset_key, 32
    )
    ref = Path(out.folder.reference_dir)
    assert ref.parent == tmp_path / "cache" / "reference"
    assert ref.name == f"{ds.dataset_key}-{out.folder.reference_fingerprint}"
    psnrs = []
    for i in range(len(ds)):
        name = f"test_{i:05d}"
        fake, target = _read(tmp_path / "run" / "samples" / f"{name}.png"), _read(ref / "target" / f"{name}.png")
        # the saved output really is the exemplar
        np.testing.assert_array_equal(fake, _read(ref / "exemplar" / f"{name}.png"))
        psnrs.append(10 * np.log10(1.0 / np.mean((fake - target) ** 2)))
    assert out.metrics["psnr"] == pytest.approx(np.mean(psnrs), rel=1e-5)
    assert out.per_image["psnr"].to_numpy() == pytest.approx(psnrs, rel=1e-5)
    assert 0 < out.metrics["ssim"] < 1 and out.num_images == len(ds) == len(out.per_image)
    assert out.grid.shape == (8 * 32, 4 * 32, 3)  # 8 rows of input | exemplar | output | target


def test_reference_images_are_written_once_per_dataset_key(tmp_path):
    ds, model, loader = _setup(tmp_path, n=6)
    ref = Path(evaluate(model, loader, {}, tmp_path / "a", tmp_path / "cache", ds.dataset_key, 32).folder.reference_dir)
    assert (ref / ".complete").exists() and len(list((ref / "image").glob("*.png"))) == 6
    stamp = (ref / "image" / "test_00000.png").stat().st_mtime_ns
    again = Path(
        evaluate(model, loader, {}, tmp_path / "b", tmp_path / "cache", ds.dataset_key, 32).folder.reference_dir
    )
    assert again == ref and (ref / "image" / "test_00000.png").stat().st_mtime_ns == stamp
    assert not list(ref.parent.glob(".*.tmp"))


class _Damaged(Dataset):
    """The same split under the same dataset key, with one photo darkened: a changed copy on disk."""

    def __init__(self, ds: SyntheticPairs) -> None:
        self.ds, self.spec, self.dataset_key = ds, ds.spec, ds.dataset_key

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> dict:
        sample = dict(self.ds[i])
        if i == 0:
            sample["image"] = sample["image"] * 0.2 - 0.8
        return sample


def test_reference_cache_is_keyed_by_content_so_a_damaged_copy_never_serves_a_clean_run(tmp_path):
    from midms.metrics.swd import SWD

    ds, model, loader = _setup(tmp_path, n=8)
    cache = tmp_path / "cache"

    def run(name, data):
        out = evaluate(
            model, DataLoader(data, batch_size=4), {"swd": SWD()}, tmp_path / name, cache, ds.dataset_key, 32
        )
        return out.metrics["swd"], out

    clean, first = run("a", ds)
    damaged, bad = run("b", _Damaged(ds))
    again, second = run("c", ds)
    assert bad.folder.reference_fingerprint != first.folder.reference_fingerprint
    assert bad.folder.reference_dir != first.folder.reference_dir
    assert damaged != clean  # SWD compares the outputs with the split's real photos
    assert again == clean and second.folder.reference_dir == first.folder.reference_dir


def test_jpg_outputs_are_measured_as_saved(tmp_path):
    ds, model, loader = _setup(tmp_path, n=4)
    png = evaluate(model, loader, {"psnr": PSNR()}, tmp_path / "p", tmp_path / "cache", ds.dataset_key, 32)
    jpg = evaluate(
        model, loader, {"psnr": PSNR()}, tmp_path / "j", tmp_path / "cache", ds.dataset_key, 32, image_format="jpg"
    )
    assert len(list((tmp_path / "j" / "samples").glob("*.jpg"))) == 4
    assert jpg.metrics["psnr"] != png.metrics["psnr"]  # the lossy files, not the tensors, were measured


class _NoTargetDataset(Dataset):
    def __init__(self, base):
        self.base, self.spec = base, DataSpec(1, 32, 6, has_target=False)

    def __len__(self):
        return len(self.base)

    def __getitem__(self, i):
        s = dict(self.base[i])
        del s["target"]
        return s


class _Broken(Metric):
    def update(self, batch: EvalBatch):
        raise RuntimeError("broken on purpose")

    def compute(self, ctx: EvalContext):  # pragma: no cover - never reached
        return {"broken": 1.0}


class _Unavailable(Metric):
    def setup(self, ctx: EvalContext) -> None:
        raise MetricSkipped("weights file /nowhere/w.pth is missing; put it there")

    def compute(self, ctx: EvalContext):  # pragma: no cover - never reached
        return {}


def test_skipped_and_failed_metrics_are_reported_and_others_still_count(tmp_path):
    ds, model, _ = _setup(tmp_path, n=4)
    loader = DataLoader(_NoTargetDataset(ds), batch_size=2)
    metrics = {"psnr": PSNR(), "broken": _Broken("broken"), "fid": _Unavailable("fid")}
    out = evaluate(model, loader, metrics, tmp_path / "run", tmp_path / "cache", "nt", 32)
    assert "ground-truth target" in out.skipped["psnr"]
    assert out.skipped["fid"].startswith("weights file /nowhere/w.pth is missing")
    assert out.errors == {"broken": "RuntimeError: broken on purpose"}
    assert out.metrics == {} and out.num_images == 4


def test_sample_names_disambiguate_repeated_inputs():
    seen: set[str] = set()
    assert sample_names(["a", "b"], ["x", "y"], seen) == ["a", "b"]
    assert sample_names(["a"], ["z"], seen) == ["a__z"]


def test_metrics_see_quantised_images(tmp_path):
    """An output within less than half a grey level of the 8-bit target is saved as the target itself."""

    class Nudged(CopyExemplar):
        def translate(self, batch):
            levels = ((batch["target"] + 1) * 127.5).round()
            return (levels + 0.4) / 127.5 - 1  # 0.4 of a grey level above: rounds back to the same level

    ds, _, loader = _setup(tmp_path, n=4)
    out = evaluate(Nudged(ds.spec), loader, {"psnr": PSNR()}, tmp_path / "r", tmp_path / "c", ds.dataset_key, 32)
    assert out.metrics["psnr"] == float("inf")


def test_midms_eval_on_a_runs_files_gives_the_runs_scores(tmp_path):
    """The runner and midms-eval score through the same function: the same files give the same numbers, digit for
    digit (SWD's random projections and bootstrap included: both are seeded)."""
    from midms import score_folders
    from midms.metrics.swd import SWD

    ds, model, loader = _setup(tmp_path, n=10)
    metrics = {"psnr": PSNR(), "ssim": SSIM(), "swd": SWD(bootstrap=5)}
    run = evaluate(model, loader, metrics, tmp_path / "run", tmp_path / "cache", ds.dataset_key, 32)
    ref = Path(run.folder.reference_dir)
    fresh = {"psnr": PSNR(), "ssim": SSIM(), "swd": SWD(bootstrap=5)}
    folders = {"exemplars": ref / "exemplar", "target": ref / "target"}
    again = score_folders(tmp_path / "run" / "samples", ref / "image", **folders, metrics=fresh, size=32, batch_size=4,
                          cache_dir=tmp_path / "cache")  # fmt: skip
    assert again.metrics == run.metrics and set(run.metrics) >= {"psnr", "ssim", "swd", "swd_ci95"}


def test_each_image_is_decoded_once_per_scoring(tmp_path, monkeypatch):
    """Per-image metrics, SWD and FID/KID read the same files: every output and every real-side image is decoded
    once, and FID and KID share one feature pass per folder."""
    import midms.metrics.base as base
    from midms.metrics.fid import FID, KID
    from midms.metrics.swd import SWD

    ds, model, loader = _setup(tmp_path, n=10)
    evaluate(model, loader, {}, tmp_path / "run", tmp_path / "cache", ds.dataset_key, 32)
    decoded: list[str] = []
    real_load = base.load_image
    monkeypatch.setattr(
        base, "load_image", lambda path, *a, **kw: decoded.append(str(path)) or real_load(path, *a, **kw)
    )

    class CountingNet:  # a stand-in for Inception (clean-fid's input: float B×3×299×299 in [0, 255])
        seen = 0

        def __call__(self, x):
            self.seen += x.shape[0]
            return x.mean(dim=(2, 3)) * torch.tensor([1.0, 2.0, 3.0]) + x.std(dim=(2, 3))

    net = CountingNet()
    tiny = {"feature_extractor": net, "feature_extractor_id": "tiny", "num_workers": 0, "progress": False}
    metrics = {
        "psnr": PSNR(),
        "ssim": SSIM(),
        "swd": SWD(bootstrap=0),
        "fid": FID(bootstrap=0, **tiny),
        "kid": KID(**tiny),
    }
    scores = score_folder(tmp_path / "run", metrics, tmp_path / "cache")
    assert set(scores.metrics) >= {"psnr", "ssim", "swd", "fid", "kid"}
    # outputs, photos, exemplars, targets and the grid's 8 input drawings: each once (the grid reads the same images)
    assert len(decoded) == len(set(decoded)) == 10 * 4 + 8
    assert net.seen == 20  # one Inception pass per folder (outputs, photos), shared by FID and KID
