"""`make reproduce`: the released models evaluated without training, its dry run, and a released model end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from released_layouts import write_release

from midms.benchmarking.dry_run import dry_run
from midms.benchmarking.matrix import load_matrix
from midms.record import RunRecord
from midms.testing.fake_celebahq import write_fake_layout

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = json.loads((ROOT / "tests" / "support" / "cocosnet_released_layouts.json").read_text())
PUBLISHED_TEST_PAIRS = 2993  # CoCosNet's celebahq_ref_test.txt: one line per CelebA-HQ val.txt face


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _released_cocosnet(folder: Path, layout: str = "celebahqedge") -> None:
    """A released CoCosNet's files in the official layout at full size (values small and seeded)."""
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    for net, file in (("Corr", "latest_net_Corr.pth"), ("G", "latest_net_G.pth")):
        state = {}
        for name, shape in LAYOUTS[layout][net].items():
            state[name] = torch.randn(shape, generator=g) * 0.02 + (1.0 if name.endswith("prelu.weight") else 0.0)
        torch.save(state, folder / file)


def test_the_dry_run_lists_every_missing_file_with_its_source_and_estimates_the_time(tmp_path, monkeypatch, capsys):
    from midms.benchmarking.__main__ import main

    monkeypatch.setenv("MIDMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MIDMS_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert main(["reproduce_celebahq", "--dry-run"]) == 1  # what `make reproduce ARGS=--dry-run` runs
    report = capsys.readouterr().out
    weights = tmp_path / "cache" / "weights"
    for path in (
        weights / "cocosnet-celebahqedge" / "latest_net_Corr.pth",
        weights / "cocosnet-celebahqedge" / "latest_net_G.pth",
        weights / "midms-celebahq" / "midms_celebA_finetuned.pth",
        weights / "midms-celebahq" / "pretrained" / "config.yaml",
        weights / "matebit-celebahq" / "latest_net_G.pth",
        weights / "vgg19_conv.pth",
        weights / "stable-diffusion-v1-5--stable-diffusion-v1-5" / "model_index.json",
        weights / "h94--IP-Adapter" / "models" / "ip-adapter_sd15.safetensors",
        tmp_path / "data" / "celebahq" / "celebahq_ref_test.txt",
        tmp_path / "data" / "celebahq" / "val.txt",  # the split evaluation reads (midms/data/celebahq.py)
    ):
        line = next(line for line in report.splitlines() if f"`{path}`" in line)
        assert line.startswith("- MISSING"), line
    for line in report.splitlines():  # each source stands on its own: none points at a line the report hides
        assert "(as " not in line or "(as latest_net_Corr.pth" in line or "(as the IP-Adapter" in line, line
    assert all("microsoft/CoCosNet" in line for line in report.splitlines() if "val.txt`" in line)
    assert "microsoft/CoCosNet" in report and "cvlab-kaist/MIDMs" in report and "pt_inception-2015-12-05" in report
    assert f"{PUBLISHED_TEST_PAIRS} pairs" in report and "on one GPU" in report
    assert "celebahq_ref.txt`" not in report  # the training list: evaluation only
    assert "Some files are missing" in report


OTHER_DATASETS = {  # what each reproduction names, under the weights folder and the dataset root
    "ade20k": (
        ["cocosnet-ade20k/latest_net_Corr.pth", "cocosnet-ade20k/latest_net_G.pth", "spade-ade20k/latest_net_G.pth",
         "unite-ade20k/latest_net_Corr.pth", "unite-ade20k/latest_net_G.pth",
         "lllyasviel--sd-controlnet-seg/config.json"],
        ["validation", "training", "ade20k_ref_test.txt"],
        "2000 pairs",  # UNITE's data/ade20k_ref_test.txt: one line per ADE20K validation photo
    ),
    "deepfashion": (
        ["cocosnet-deepfashion/latest_net_Corr.pth", "cocosnet-deepfashion/latest_net_G.pth",
         "lllyasviel--sd-controlnet-openpose/config.json"],
        ["val.txt", "img", "pose", "deepfashion_ref_test.txt", "deepfashion_self_pair.txt"],
        None,  # no published count: the estimate waits for the list
    ),
}  # fmt: skip


@pytest.mark.parametrize("dataset", list(OTHER_DATASETS))
def test_the_other_datasets_reproductions_list_their_released_files_and_data(dataset, tmp_path, monkeypatch, capsys):
    from midms.benchmarking.__main__ import main

    monkeypatch.setenv("MIDMS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MIDMS_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert main([f"reproduce_{dataset}", "--dry-run"]) == 1  # make reproduce DATASET=<dataset> ARGS=--dry-run
    report = capsys.readouterr().out
    released, data_files, pairs = OTHER_DATASETS[dataset]
    paths = [tmp_path / "cache" / "weights" / f for f in released] + [
        tmp_path / "data" / dataset / f for f in data_files
    ]
    for path in paths:
        line = next(line for line in report.splitlines() if f"`{path}`" in line)
        sources = ("github.com", "hf download", "sceneparsing", "DeepFashion", "as latest_net_Corr.pth")
        assert line.startswith("- MISSING") and any(source in line for source in sources), line
    assert pairs is None or pairs in report
    assert "_ref.txt`" not in report and "train.txt`" not in report  # training files: evaluation only


def test_the_dry_run_with_everything_present_hashes_the_files_and_counts_the_pairs(tmp_path, monkeypatch):
    cache, data = tmp_path / "cache", tmp_path / "data"
    monkeypatch.setenv("MIDMS_CACHE", str(cache))
    monkeypatch.setenv("MIDMS_DATA", str(data))
    ids = write_fake_layout(data / "celebahq", pairing_lists=True)
    weights = cache / "weights"
    files = [
        weights / "cocosnet-celebahqedge" / "latest_net_Corr.pth",
        weights / "cocosnet-celebahqedge" / "latest_net_G.pth",
        weights / "midms-celebahq" / "midms_celebA_finetuned.pth",
        weights / "midms-celebahq" / "pretrained" / "config.yaml",
        weights / "matebit-celebahq" / "latest_net_G.pth",
        weights / "vgg19_conv.pth",
        weights / "stable-diffusion-v1-5--stable-diffusion-v1-5" / "model_index.json",
        weights / "lllyasviel--sd-controlnet-canny" / "config.json",
        weights / "h94--IP-Adapter" / "models" / "ip-adapter_sd15.safetensors",
        weights / "h94--IP-Adapter" / "models" / "image_encoder" / "config.json",
    ]
    for i, path in enumerate(files):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"file {i}".encode())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr("midms.runner.metric_problems", lambda cfg, metrics=None: {})  # metric weights: elsewhere
    matrix = load_matrix("reproduce_celebahq")
    report, complete = dry_run(matrix, matrix.jobs())
    assert complete and "MISSING" not in report and "Everything is here." in report
    for path in files:
        assert f"`{path}`" in report and f"sha256 {_sha256(path)}" in report
    assert f"{len(ids['val'])} pairs × 0.05 s" in report  # the pairing list's lines, not the published count


@pytest.mark.slow  # a paper-size CoCosNet through run.py (the loading: tests/baselines/test_cocosnet_released.py)
def test_a_released_cocosnet_is_evaluated_without_training(run_entry, tmp_path):
    data = tmp_path / "data" / "celebahq"
    write_fake_layout(data, pairing_lists=True)
    release = tmp_path / "release"
    _released_cocosnet(release)
    proc = run_entry(
        "dataset=celebahq",
        "model=cocosnet",
        f"model.pretrained={release}",
        "train=false",
        "~preset",  # no GPU, Caffe VGG or Inception here: the released weights, at 64 px, scored by SWD
        "model.size=paper",
        "model.vgg_weights=random",  # the training losses' VGG19: unused without training
        "dataset.image_size=64",
        "dataset.load_size=64",
        "metrics=pixel",
        "+metrics.swd._target_=midms.metrics.swd.SWD",
        "trainer=cpu",
        "logger=none",
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "logs").rglob("results.json")
    record = RunRecord.read(path)
    assert record.status == "completed" and record.train is None and "swd" in record.metrics
    assert record.model_protocol["pretrained"]["latest_net_G.pth"] == _sha256(release / "latest_net_G.pth")
    assert record.model_protocol["pretrained"]["latest_net_Corr.pth"] == _sha256(release / "latest_net_Corr.pth")


@pytest.mark.slow  # a paper-size CoCosNet with --warp_patch through run.py, on DeepFashion files the test writes
def test_a_released_deepfashion_cocosnet_is_evaluated_without_training(run_entry, tmp_path):
    from midms.testing.fake_deepfashion import write_fake_layout as write_deepfashion

    write_deepfashion(tmp_path / "data" / "deepfashion", garments={"train": 2, "val": 2})
    release = tmp_path / "release"
    _released_cocosnet(release, "deepfashion")
    proc = run_entry(
        "dataset=deepfashion", "model=cocosnet", f"model.pretrained={release}", "train=false", "~preset",
        "model.size=paper", "model.vgg_weights=random", "dataset.image_size=64", "dataset.load_size=64",
        "metrics=pixel", "+metrics.swd._target_=midms.metrics.swd.SWD", "trainer=cpu", "logger=none", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "logs").rglob("results.json")
    record = RunRecord.read(path)
    assert record.status == "completed" and "swd" in record.metrics and record.protocol["num_images"] == 6
    assert record.model_protocol["settings"]["warp_patch"] is True
    assert record.model_protocol["pretrained"]["latest_net_G.pth"] == _sha256(release / "latest_net_G.pth")


def _evaluate_release(run_entry, tmp_path: Path, dataset: str, model: str, size: int) -> tuple[RunRecord, Path]:
    """A released-layout paper-size ``model`` (random weights) evaluated through run.py on fake ``dataset`` files."""
    if dataset == "deepfashion":
        from midms.testing.fake_deepfashion import write_fake_layout as write_deepfashion

        write_deepfashion(tmp_path / "data" / "deepfashion", garments={"train": 2, "val": 2})
    elif dataset == "ade20k":
        from midms.testing.fake_ade20k import write_fake_layout as write_ade20k

        write_ade20k(tmp_path / "data" / "ade20k", n_train=4, n_val=2)
    else:
        write_fake_layout(tmp_path / "data" / "celebahq", n_train=4, n_val=2, pairing_lists=True)
    release = tmp_path / "release"
    write_release(model, release)
    proc = run_entry(
        f"dataset={dataset}", f"model={model}", f"model.pretrained={release}", "train=false", "~preset",
        "model.size=paper", f"dataset.image_size={size}", f"dataset.load_size={size}", "metrics=pixel",
        "+metrics.swd._target_=midms.metrics.swd.SWD", "trainer=cpu", "logger=none", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "logs").rglob("results.json")
    record = RunRecord.read(path)
    assert record.status == "completed" and "swd" in record.metrics and record.model_protocol["model"] == model
    assert record.model_protocol["pretrained"]["latest_net_G.pth"] == _sha256(release / "latest_net_G.pth")
    return record, release


@pytest.mark.slow  # the paper-size DynaST (its positional embedding fixes 256 px) through run.py on DeepFashion files
def test_a_released_deepfashion_dynast_is_evaluated_without_training(run_entry, tmp_path):
    record, _ = _evaluate_release(run_entry, tmp_path, "deepfashion", "dynast", 256)
    assert record.protocol["num_images"] == 6 and "video-like" in record.protocol["pairing"]


@pytest.mark.slow  # the paper-size MATEBIT (its positional embedding fixes 256 px) through run.py on CelebA-HQ files
def test_a_released_celebahq_matebit_is_evaluated_without_training(run_entry, tmp_path):
    record, _ = _evaluate_release(run_entry, tmp_path, "celebahq", "matebit", 256)
    assert record.protocol["num_images"] == 2 and record.model_protocol["settings"]["attention_at_test"] is False


@pytest.mark.slow  # the paper-size CoCosNet v2 through run.py, on DeepFashion files drawn as its HD reader draws them
def test_a_released_cocosnet_v2_is_evaluated_without_training(run_entry, tmp_path):
    record, release = _evaluate_release(run_entry, tmp_path, "deepfashion", "cocosnet_v2", 128)
    assert record.protocol["num_images"] == 6
    assert "first reference" in record.protocol["pairing"]  # its test command: no --video_like
    assert record.model_protocol["pretrained"]["latest_net_Corr.pth"] == _sha256(release / "latest_net_Corr.pth")


@pytest.mark.slow  # the paper-size UNITE (ADE20K options: 151 channels, coordconv, non-local adaptors) through run.py
def test_a_released_ade20k_unite_is_evaluated_without_training(run_entry, tmp_path):
    record, release = _evaluate_release(run_entry, tmp_path, "ade20k", "unite", 256)
    assert record.protocol["num_images"] == 2 and record.model_protocol["settings"]["use_coordconv"] is True
    assert record.model_protocol["pretrained"]["latest_net_Corr.pth"] == _sha256(release / "latest_net_Corr.pth")
