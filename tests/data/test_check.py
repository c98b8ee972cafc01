"""`python -m midms.data.check` and the dataset configs, composed with the project's Hydra config."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from midms.data import check
from midms.data.build import build_datamodule
from midms.data.contract import validate_sample
from midms.data.datamodule import TranslationDataModule
from midms.testing import fake_celebahq, fake_lsun

CONF = Path(__file__).resolve().parents[2] / "conf"
SMALL = ["dataset.image_size=32", "dataset.load_size=40"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    fake_celebahq.write_fake_layout(tmp_path / "data" / "celebahq", pairing_lists=True)
    fake_lsun.write_fake_layout(tmp_path / "data" / "lsun_church")
    return tmp_path / "data"


def run_check(capsys: pytest.CaptureFixture, *overrides: str) -> tuple[int, str, str]:
    status = check.main(list(overrides))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_check_reports_splits_and_evaluation_pairs(data_dir: Path, tmp_path: Path, capsys) -> None:
    status, out, _ = run_check(
        capsys, "dataset=celebahq", f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path / 'cache'}", *SMALL
    )
    assert status == 0, out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith(("train ", "val "))}
    assert rows["train"][2:] == ["8", "0"] and rows["val"][1:] == ["evaluation", "4", "0"]
    assert "evaluation: 4 pairs" in out and "celebahq_ref_test.txt" in out and "4 from the list" in out
    status, out, _ = run_check(capsys, "dataset=lsun_church", f"paths.data_dir={data_dir}", *SMALL)
    assert status == 0 and "evaluation: 4 pairs (seeded" in out


def test_check_lists_unreadable_and_missing_files(data_dir: Path, tmp_path: Path, capsys) -> None:
    mask = data_dir / "celebahq" / "CelebAMask-HQ-mask-anno" / "2" / "05608_nose.png"  # a val face's mask
    mask.write_bytes(b"broken")
    status, out, _ = run_check(
        capsys, "dataset=celebahq", f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path / 'cache'}", *SMALL
    )
    assert status == 1 and f"unreadable: {mask}" in out
    # 5608's own pair, and the pair whose listed exemplar it is: both skipped, neither re-paired
    assert (
        "evaluation: 4 pairs" in out
        and "2 of them skipped (they read an unreadable file), e.g. ['5608', '7711']" in out
    )
    label = sorted((data_dir / "lsun_church" / "training").glob("*.png"))[0]
    label.unlink()
    status, out, _ = run_check(capsys, "dataset=lsun_church", f"paths.data_dir={data_dir}", *SMALL)
    assert status == 1 and str(label) in out and "evaluation: 4 pairs" in out


def test_check_fails_clearly_without_the_root(tmp_path: Path, capsys) -> None:
    status, out, err = run_check(capsys, "dataset=celebahq", f"paths.data_dir={tmp_path / 'none'}")
    assert status == 2 and str(tmp_path / "none" / "celebahq") in err and "CelebA-HQ-img" in err
    status, _, err = run_check(capsys, "dataset=no_such_dataset")
    assert status == 2 and "no_such_dataset" in err


def test_dataset_config_instantiates_the_datamodule(data_dir: Path, tmp_path: Path) -> None:
    overrides = [
        "dataset=celebahq",
        f"paths.data_dir={data_dir}",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "dataset.datamodule.num_workers=2",
        *SMALL,
    ]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    dm = build_datamodule(cfg.dataset)
    assert isinstance(dm, TranslationDataModule)
    assert dm.spec.semantic_nc == 15 and dm.spec.image_size == 32
    batch = next(iter(dm.eval_dataloader()))
    assert batch["semantics"].shape == (4, 15, 32, 32) and batch["labels"].shape == (4, 32, 32)
    assert batch.pop("skipped_pairs") == []  # every pair readable: nothing skipped
    for i in range(len(batch["id"])):
        validate_sample({k: v[i] for k, v in batch.items()}, dm.spec)
    protocol = dm.protocol()
    assert protocol["num_pairs"] == 4 and protocol["dataset_key"].startswith("celebahq-val-32px-n4-pairs")
    assert any((tmp_path / "cache").rglob("*.npz"))  # paths.cache_dir feeds the edge cache


@pytest.mark.parametrize(
    ("experiment", "dataset", "nc"), [("paper_celebahq", "celebahq", 15), ("paper_lsun_church", "lsun_church", 151)]
)
def test_paper_experiments_compose(experiment: str, dataset: str, nc: int, data_dir: Path, tmp_path: Path) -> None:
    overrides = [f"experiment={experiment}", f"paths.data_dir={data_dir}", f"paths.cache_dir={tmp_path / 'cache'}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=overrides)
    assert cfg.name == experiment and cfg.dataset.name == dataset and cfg.trainer.accelerator == "gpu"
    assert cfg.dataset.image_size == 256 and cfg.dataset.load_size == 286
    assert cfg.model.name == "copy_exemplar" and cfg.get("preset") is None  # the training batch is a preset's
    dm = build_datamodule(cfg.dataset)
    assert dm.spec.semantic_nc == nc and dm.spec.image_size == 256
    validate_sample(dm.eval_dataset[0], dm.spec)


def test_check_of_ade20k_reports_its_pairs_and_a_broken_or_missing_label_map(tmp_path: Path, capsys) -> None:
    from midms.testing import fake_ade20k

    data_dir = tmp_path / "data"
    stems = fake_ade20k.write_fake_layout(data_dir / "ade20k")
    status, out, _ = run_check(capsys, "dataset=ade20k", f"paths.data_dir={data_dir}", *SMALL)
    assert status == 0 and "evaluation: 4 pairs" in out and "ade20k_ref_test.txt" in out and "4 from the list" in out
    label = data_dir / "ade20k" / "validation" / "annotations" / f"{stems['val'][1]}.png"
    label.write_bytes(b"broken")
    status, out, _ = run_check(capsys, "dataset=ade20k", f"paths.data_dir={data_dir}", *SMALL)
    assert status == 1 and f"unreadable: {label}" in out and "1 of them skipped" in out  # never a substituted pair
    label.unlink()
    status, out, _ = run_check(capsys, "dataset=ade20k", f"paths.data_dir={data_dir}", *SMALL)
    assert status == 1 and f"{stems['val'][1]}.png" in out


def test_check_of_deepfashion_reports_a_corrupt_pose_file_a_corrupt_photo_and_a_missing_pose(tmp_path, capsys) -> None:
    from midms.testing import fake_deepfashion

    data_dir = tmp_path / "data"
    paths = fake_deepfashion.write_fake_layout(data_dir / "deepfashion")
    root = data_dir / "deepfashion"
    # the dataset as CoCosNet's row reads it (the quickstart's model, MIDMs, has a DeepFashion reader of its own)
    check_args = ("dataset=deepfashion", "model=cocosnet", f"paths.data_dir={data_dir}", *SMALL)
    status, out, _ = run_check(capsys, *check_args)
    assert status == 0 and "evaluation: 6 pairs" in out and "deepfashion_self_pair.txt" in out, out
    status, out, _ = run_check(capsys, "dataset=deepfashion", "model=midms", f"paths.data_dir={data_dir}", *SMALL)
    assert status == 0 and "first reference" in out and "self_pair" not in out  # MIDMs' reader: no video-like pairs
    subset = root / paths["val"][0].replace("img/", "pose/", 1).replace(".jpg", "_subset.txt")
    subset.write_text("0 1\n")  # two keypoint rows where OpenPose writes 18 + 2
    photo = root / paths["val"][4]
    photo.write_bytes(photo.read_bytes()[:200])  # truncated
    status, out, _ = run_check(capsys, *check_args)
    assert status == 1 and f"unreadable: {subset}" in out and f"unreadable: {photo}" in out
    # the input itself and the two views whose exemplar it is, and the truncated photo: never a substituted pair
    assert "1 unreadable .txt files" in out and "4 of them skipped" in out
    subset.unlink()
    status, out, _ = run_check(capsys, *check_args)
    assert status == 1 and str(subset) in out
