"""Faults injected through the real entry point and the report: every job leaves a record that tells the truth."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import hydra
import pytest
import torch
from e2e import MIDMS_TINY, TINY

from midms import files
from midms.data.build import build_datamodule
from midms.provenance import Heartbeat
from midms.record import RunRecord, effective_status, this_process
from midms.reporting import collect_jobs

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT_FILE = ".heartbeat"  # docs/reliability.md: touched every 30 s while a job runs
STALE_AFTER_SECONDS = 300  # docs/reliability.md: a heartbeat older than 5 minutes means the job is gone
MIDMS = [*TINY, "model=midms", *MIDMS_TINY, "ablation=no_refine", "logger=csv"]


def _only_results(root: Path) -> RunRecord:
    (path,) = root.rglob("results.json")
    return RunRecord.read(path)


def test_a_value_that_breaks_an_interpolation_is_a_failed_record_without_traceback(run_entry, tmp_path):
    proc = run_entry(*TINY, "model=midms", "model.size=huge", "logger=none")
    assert proc.returncode == 1
    res = _only_results(tmp_path / "logs" / "runs")
    assert res.status == "failed" and res.model == "midms"
    assert "model.sizes.huge" in res.error and "model.size selects model.sizes.<size>" in res.error
    assert "Traceback" not in proc.stderr and res.traceback is None


def test_a_remote_checkpoint_is_refused(run_entry, tmp_path):
    proc = run_entry(*TINY, "model=copy_exemplar", "ckpt_path=https://example.com/last.ckpt", "logger=none")
    assert proc.returncode == 1
    res = _only_results(tmp_path / "logs" / "runs")
    assert res.status == "failed" and "remote address" in res.error and "local files only" in res.error


def test_a_killed_job_is_reported_interrupted_not_running(isolated_env, tmp_path):
    run_dir = tmp_path / "job"
    cmd = [sys.executable, str(ROOT / "run.py"), *MIDMS, "trainer.max_epochs=50", f"hydra.run.dir={run_dir}"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=isolated_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not (run_dir / "checkpoints").exists():
            time.sleep(0.2)  # training has started: the record says running
        assert RunRecord.read(run_dir / "results.json").status == "running"
        assert collect_jobs(run_dir)[0]["status"].tolist() == ["running"]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    res = RunRecord.read(run_dir / "results.json")
    assert res.status == "running" and res.pid == proc.pid  # what the dead job left behind
    jobs, _ = collect_jobs(run_dir)
    assert jobs["status"].tolist() == ["interrupted"]


def test_a_job_on_another_host_is_judged_by_its_heartbeat(tmp_path):
    record = RunRecord(status="running", pid=1, host="some-cluster-node")
    record.write(tmp_path / "results.json")
    (tmp_path / HEARTBEAT_FILE).touch()
    assert effective_status(record, tmp_path) == "running"
    old = time.time() - STALE_AFTER_SECONDS - 1
    os.utime(tmp_path / HEARTBEAT_FILE, (old, old))
    assert effective_status(record, tmp_path) == "interrupted"
    assert effective_status(RunRecord(status="completed", pid=1, host="some-cluster-node"), tmp_path) == "completed"
    # this host, a live process (ours) but a heartbeat 5 minutes old: the id now belongs to someone else
    assert effective_status(RunRecord(**this_process()), tmp_path) == "interrupted"
    (tmp_path / HEARTBEAT_FILE).touch()
    assert effective_status(RunRecord(**this_process()), tmp_path) == "running"


def test_the_heartbeat_is_touched_while_the_block_runs(tmp_path):
    beat = tmp_path / HEARTBEAT_FILE
    with Heartbeat(tmp_path, every=0.05):
        time.sleep(0.02)
        first = beat.stat().st_mtime_ns
        time.sleep(0.3)
        assert beat.stat().st_mtime_ns > first


def test_the_report_lists_sweep_jobs_that_never_wrote_results(tmp_path):
    for job in ("0", "1"):
        (tmp_path / job / ".hydra").mkdir(parents=True)
    RunRecord(status="completed", model="a", metrics={"psnr": 1.0}).write(tmp_path / "0" / "results.json")
    df = collect_jobs(tmp_path)[0].set_index("job")
    assert df.loc["0", "status"] == "completed"
    assert df.loc["1", "status"] == "failed" and df.loc["1", "error"].startswith("no results.json: the job stopped")
    jobs, _ = collect_jobs(tmp_path)
    assert sorted(jobs["status"]) == ["completed", "failed"]


def test_a_failed_write_names_the_file_and_keeps_the_previous_version(tmp_path, monkeypatch):
    path = tmp_path / "results.json"
    RunRecord(status="running").write(path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # readable as any file the user writes, not private

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "replace", full_disk)
    with pytest.raises(OSError, match=f"could not write {path}.*previous version is unchanged.*No space left"):
        RunRecord(status="completed").write(path)
    assert RunRecord.read(path).status == "running"
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]  # no half-written temporary file


def test_a_checkpoint_write_that_fails_half_way_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    """The trainer's checkpoint writer (the one every run uses) writes next to the file and renames."""
    trainer = hydra.utils.instantiate(_compose("model=midms").trainer, logger=False, enable_progress_bar=False)
    io = trainer.strategy.checkpoint_io
    path = tmp_path / "checkpoints" / "last.ckpt"
    io.save_checkpoint({"step": 1, "weights": torch.ones(4)}, path)
    before = path.read_bytes()

    def write_half_then_fail(f):
        f.write(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    real_atomic_write = files.atomic_write
    monkeypatch.setattr(files, "atomic_write", lambda p, write: real_atomic_write(p, write_half_then_fail))
    with pytest.raises(OSError, match=f"could not write {path}.*previous version is unchanged"):
        io.save_checkpoint({"step": 2, "weights": torch.zeros(1000)}, path)
    assert path.read_bytes() == before and [p.name for p in path.parent.iterdir()] == ["last.ckpt"]
    assert torch.load(path, weights_only=True)["step"] == 1


def _compose(*overrides: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["paths.output_dir=/tmp/unused", *overrides])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=cocosnet", "dataset.image_size=32"], "at least 64 px and a multiple of 32"),
        (["model=cocosnet", "dataset.image_size=80"], "at least 64 px and a multiple of 32"),
        (["model=midms", "dataset.image_size=36"], "must be a multiple of 8"),
        (["model=midms", "dataset.datamodule.batch_size=0"], "batch_size=0: a batch needs at least one sample"),
        (["model=midms", "+model.module.training.learning_rate=1e-4"], "unknown training settings ['learning_rate']"),
        (
            ["model=cocosnet", "dataset.image_size=64", "+model.loss_overrides.lamda_vgg=1"],
            "unknown loss settings ['lamda_vgg']",
        ),
    ],
)
def test_unsupported_sizes_are_user_errors_when_the_job_is_built(overrides, message):
    import hydra

    from midms.errors import UserError

    cfg = _compose(*overrides)
    with pytest.raises(Exception) as err:  # Hydra's instantiate wraps the UserError; the runner unwraps it
        datamodule = build_datamodule(cfg.dataset)
        hydra.utils.instantiate(cfg.model.module, data_spec=datamodule.spec)
    cause = err.value if isinstance(err.value, UserError) else err.value.__cause__
    assert isinstance(cause, UserError) and message in str(cause)


def test_an_unsupported_size_stops_before_training_with_one_paragraph(run_entry, tmp_path):
    proc = run_entry(*TINY, "model=midms", "dataset.image_size=36", "logger=none")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    res = _only_results(tmp_path / "logs" / "runs")
    assert res.status == "failed" and "multiple of 8" in res.error and res.train is None


@pytest.mark.parametrize("model", ["midms", "cocosnet"])
def test_every_tiny_model_runs_without_downloads_and_says_so_in_its_protocol(model):
    import hydra

    cfg = _compose(f"model={model}")
    datamodule = build_datamodule(cfg.dataset)
    built = hydra.utils.instantiate(cfg.model.module, data_spec=datamodule.spec)
    if model == "cocosnet":  # on the synthetic data its loss network is trained here, on the training split
        assert built.protocol["vgg_weights"] == "domain" and "warning" not in built.protocol
    else:
        assert built.protocol["vgg_weights"] == "random" and "RANDOM" in built.protocol["warning"]
    paper = _compose(f"model={model}", "model.size=paper")
    vgg = paper.model.module.vgg_weights if model == "cocosnet" else paper.model.module.vgg.weights
    assert vgg == "torchvision"  # the paper size uses pretrained VGG19 weights


def _celebahq_val(tmp_path: Path):
    from functools import partial

    from midms.data import celebahq
    from midms.data.datamodule import TranslationDataModule
    from midms.testing import fake_celebahq

    root = tmp_path / "celebahq"
    fake_celebahq.write_fake_layout(root, pairing_lists=True)
    dm = TranslationDataModule(
        dataset=partial(celebahq.CelebAHQEdges, root=root, image_size=32, load_size=40),
        batch_size=4,
        eval_split="val",
    )
    return root, dm


def test_an_evaluation_pair_with_missing_files_is_skipped_and_counted_never_replaced(tmp_path):
    from midms.evaluation.evaluator import evaluate
    from midms.metrics.pixel import PSNR
    from midms.models.copy_exemplar import CopyExemplar

    root, dm = _celebahq_val(tmp_path)
    ids = list(dm.eval_dataset.ids)
    victim = ids[1]
    for mask in (root / "CelebAMask-HQ-mask-anno").rglob(f"{int(victim):05d}_*.png"):
        mask.unlink()  # the quick scan on construction reads photos only: this shows up while evaluating
    out = evaluate(
        CopyExemplar(dm.spec), dm.eval_dataloader(), {"psnr": PSNR()}, tmp_path / "run", tmp_path / "cache",
        dm.eval_dataset.dataset_key, 32,
    )  # fmt: skip
    ds = dm.eval_dataset
    lost = [i for k, i in enumerate(ids) if victim in (i, ds.exemplar_id(k))]  # as input or as exemplar
    assert [p["id"] for p in out.skipped_pairs] == lost and victim in lost and len(lost) < len(ids)
    assert all("no part mask" in p["reason"] for p in out.skipped_pairs)
    expected = sorted(i for i in ids if i not in lost)
    assert sorted(out.per_image["id"]) == expected and out.num_images == len(ids) - len(lost)
    assert sorted(p.stem for p in (tmp_path / "run" / "samples").glob("*.png")) == expected


def test_a_repeated_evaluation_pair_is_an_error_not_an_overwritten_sample():
    from midms.evaluation.translate import sample_names

    seen: set[str] = set()
    assert sample_names(["a", "a"], ["x", "y"], seen) == ["a", "a__y"]
    with pytest.raises(ValueError, match=r"pair \(a, exemplar y\) occurs twice"):
        sample_names(["a"], ["y"], seen)


def test_data_check_finds_a_face_without_masks_and_a_truncated_photo(tmp_path, capsys):
    from midms.data import check

    root, dm = _celebahq_val(tmp_path)
    args = ["dataset=celebahq", f"paths.data_dir={tmp_path}", f"paths.cache_dir={tmp_path / 'cache'}"]
    args += ["dataset.image_size=32", "dataset.load_size=40"]
    assert check.main(args) == 0
    capsys.readouterr()
    victim = dm.eval_dataset.ids[0]
    for mask in (root / "CelebAMask-HQ-mask-anno").rglob(f"{int(victim):05d}_*.png"):
        mask.unlink()
    photo = root / "CelebA-HQ-img" / f"{dm.eval_dataset.ids[1]}.jpg"
    photo.write_bytes(photo.read_bytes()[: photo.stat().st_size * 2 // 3])  # cut: the last rows are gone
    assert check.main(args) == 1
    out = capsys.readouterr().out
    assert f"{int(victim):05d}_skin.png (missing)" in out and f"unreadable: {photo}" in out


# TINY gives 4 batches an epoch; MIDMs takes one optimiser step a batch, CoCosNet two (G and D). A checkpoint
# is written every `every` steps, the run is killed when step `kill` starts, and `last.ckpt` then holds step
# `saved`, with `batches` of its epoch trained.
RESUME_CASES = [  # model, every, kill, saved, batches, workers
    ("midms", 2, 7, 6, 2, 0),  # mid-way through the second epoch
    pytest.param("midms", 2, 5, 4, 4, 2, marks=pytest.mark.slow),  # the first epoch's end, two loader workers
    pytest.param("cocosnet", 4, 14, 12, 2, 0, marks=pytest.mark.slow),  # mid-way through the second epoch
]


@pytest.mark.parametrize(("model", "every", "kill", "saved", "batches", "workers"), RESUME_CASES)
def test_a_killed_run_resumed_ends_bitwise_like_an_uninterrupted_one(run_entry, tmp_path, model, every, kill, saved,
                                                                     batches, workers):  # fmt: skip
    """Killed with no chance to clean up, resumed from the last checkpoint: weights, optimisers, the data order
    and its position in the epoch, and the random generators (diffusion noise, timesteps) all continue as they
    were, so the metrics are the same floats as those of a run never interrupted."""
    # MIDMs: the end-to-end phase (diffusion noise, random timesteps) starts at step 9, after the resume point
    size = (
        ["dataset.image_size=64"]
        if model == "cocosnet"
        else [*MIDMS_TINY, "model.sizes.tiny.training.warmup_iter=0.75"]
    )
    common = [*TINY, *size, f"model={model}", "trainer.max_epochs=3",
              f"callbacks.step_checkpoint.every_n_train_steps={every}", f"dataset.datamodule.num_workers={workers}",
              "~metrics.swd"]  # fmt: skip
    full = run_entry(*common, f"hydra.run.dir={tmp_path / 'full'}")
    assert full.returncode == 0, full.stderr[-3000:]
    die = ["+callbacks.die._target_=tiny_models.DieAtStep", f"+callbacks.die.step={kill}"]
    killed = run_entry(*common, *die, f"hydra.run.dir={tmp_path / 'cut'}")
    assert killed.returncode == 3
    first = RunRecord.read(tmp_path / "cut" / "results.json")
    assert first.status == "running"  # what the dead job left behind
    # plain containers and tensors only: hyper-parameters (no OmegaConf objects) and the generators' states
    ckpt = torch.load(tmp_path / "cut" / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == saved
    assert isinstance(ckpt["hyper_parameters"]["settings" if model == "cocosnet" else "prior"], dict)
    assert set(ckpt["rng_states"]) == {"torch", "cuda", "numpy", "python"}
    assert ckpt["TranslationDataModule"]["batches_done"] == batches
    resumed = run_entry(*common, "resume=true", f"hydra.run.dir={tmp_path / 'cut'}")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = RunRecord.read(tmp_path / "full" / "results.json"), RunRecord.read(tmp_path / "cut" / "results.json")
    assert b.status == "completed" and a.train["global_step"] == b.train["global_step"]
    assert a.metrics == b.metrics  # bitwise: the same floats
    assert b.wandb_id == first.wandb_id and a.config_hash == b.config_hash  # the same W&B run
    assert b.started == first.started and len(b.resumed) == 1 and b.resumed[0] >= first.started  # both attempts


@pytest.mark.slow
def test_a_model_with_nothing_to_train_resumed_after_a_kill_evaluates_again(isolated_env, tmp_path):
    """copy_exemplar has no checkpoint: a run killed while it evaluates is evaluated again from the start."""
    args = [sys.executable, str(ROOT / "run.py"), *TINY, "model=copy_exemplar", "logger=none"]
    full = subprocess.run([*args, f"hydra.run.dir={tmp_path / 'full'}"], env=isolated_env, capture_output=True,
                          text=True)  # fmt: skip
    assert full.returncode == 0, full.stderr[-3000:]
    cut = tmp_path / "cut"
    proc = subprocess.Popen([*args, f"hydra.run.dir={cut}", "evaluation.image_format=png"], env=isolated_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not any((cut / "samples").glob("*.png")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert RunRecord.read(cut / "results.json").status == "running"
    resumed = subprocess.run([*args, f"hydra.run.dir={cut}", "evaluation.image_format=png", "resume=true"],
                             env=isolated_env, capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = RunRecord.read(tmp_path / "full" / "results.json"), RunRecord.read(cut / "results.json")
    assert b.status == "completed" and a.metrics == b.metrics


def test_a_resume_without_a_checkpoint_changes_nothing_in_the_folder(tmp_path, monkeypatch, caplog):
    from hydra import compose, initialize_config_dir

    from midms import runner

    run_dir = tmp_path / "job"
    RunRecord(status="failed", error="an earlier attempt", wandb={"id": "x"}).write(run_dir / "results.json")
    before = (run_dir / "results.json").read_bytes()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "model=midms", "logger=none", "resume=true",
                                           f"paths.output_dir={run_dir}"])  # fmt: skip
    monkeypatch.setattr(runner, "FAILED_JOBS", [])
    assert math.isnan(runner.run(cfg))  # no objective
    assert [str(run_dir)] == runner.FAILED_JOBS and "last.ckpt does not exist" in caplog.text  # exit code 1
    assert (run_dir / "results.json").read_bytes() == before  # the earlier record is intact


def test_weight_hashes_are_checked_against_the_published_ones(tmp_path, monkeypatch):
    from midms import weights

    data = b"not the real weights"
    sha = hashlib.sha256(data).hexdigest()  # independent of the module's own hashing
    renamed = tmp_path / "vgg19-dcbb9e9d.pth"  # torch.hub's rule: the name carries the start of the SHA-256
    renamed.write_bytes(data)
    with pytest.raises(weights.WeightsMismatch) as err:
        weights.verified_sha256(renamed, "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth")
    assert (
        sha in str(err.value) and "starts with dcbb9e9d" in str(err.value) and "download.pytorch.org" in str(err.value)
    )
    matching = tmp_path / f"mine-{sha[:8]}.pth"
    matching.write_bytes(data)
    assert weights.verified_sha256(matching) == sha
    unnamed = tmp_path / "vgg19_conv.pth"  # no published hash: loaded, its hash recorded
    unnamed.write_bytes(data)
    assert weights.verified_sha256(unnamed) == sha
    monkeypatch.setitem(weights.KNOWN_SHA256, "vgg19_conv.pth", "0" * 64)  # a full published hash wins
    with pytest.raises(weights.WeightsMismatch, match="0{64}"):
        weights.verified_sha256(unnamed)


def test_a_wrong_file_under_an_official_name_stops_the_loss_network_and_is_a_metric_error(tmp_path, hub_dir):
    from midms.evaluation.metric_set import MetricSet
    from midms.metrics.base import EvalContext
    from midms.metrics.fid import FID
    from midms.nn.vgg import VGG19Features
    from midms.weights import WeightsMismatch

    (hub_dir / "checkpoints").mkdir(parents=True)
    torch.save({"features.0.weight": torch.zeros(1)}, hub_dir / "checkpoints" / "vgg19-dcbb9e9d.pth")
    with pytest.raises(WeightsMismatch, match="dcbb9e9d"):
        VGG19Features(["relu1_1"], weights="torchvision")
    inception = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    torch.save({}, inception)
    metrics = MetricSet({"fid": FID(mode="legacy_pytorch", weights=str(inception))})
    metrics.setup(EvalContext(samples_dir=tmp_path, reference_dir=tmp_path, cache_dir=tmp_path, dataset_key="k",
                              image_size=32))  # fmt: skip
    assert "fid" in metrics.errors and "6726825d" in metrics.errors["fid"] and "fid" not in metrics.skipped


def test_metrics_that_will_be_skipped_are_announced_before_training(run_entry, tmp_path):
    model = ["model=copy_exemplar", "model.module._target_=tiny_models.TinyTrainable", "model.name=tiny"]
    proc = run_entry(*TINY, *model, "logger=none")
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    warning, training = log.find("will not be computed at evaluation"), log.find("training tiny on synthetic")
    assert -1 < warning < training
    assert "fid: " in log[warning:training] and "inception-2015-12-05.pt" in log[warning:training]


def test_a_diverged_training_run_fails_naming_the_step_and_is_not_scored(run_entry, tmp_path):
    proc = run_entry(*MIDMS, "model.sizes.tiny.training.lr=1e12", "model.sizes.tiny.training.lr_diffusion=1e12")
    assert proc.returncode == 1
    res = _only_results(tmp_path / "logs" / "runs")
    assert res.status == "failed" and "training diverged at optimiser step" in res.error, res.error
    assert "train/" in res.error and ("nan" in res.error or "inf" in res.error)
    assert res.metrics == {} and res.traceback is None
    (run_dir,) = {p.parent for p in (tmp_path / "logs" / "runs").rglob("results.json")}
    assert not (run_dir / "samples").exists()  # nothing translated, nothing scored


def test_non_finite_outputs_are_never_scored(tmp_path):
    from midms.data.contract import DataSpec
    from midms.evaluation.translate import NonFiniteOutput, _translate
    from midms.models.base import TranslationModel

    class Broken(TranslationModel):
        def translate(self, batch):
            out = torch.zeros(2, 3, 4, 4)
            out[1, 0, 0, 0] = float("nan")
            return out

    with pytest.raises(NonFiniteOutput, match="1 of 2 pairs.*inputs b"):
        _translate(Broken(DataSpec(1, 4, None, False)), {"id": ["a", "b"]}, warp_labels=False)


def test_a_zero_evaluation_batch_is_an_error_not_a_fallback(run_entry, tmp_path):
    proc = run_entry(*TINY, "model=copy_exemplar", "logger=none", "dataset.datamodule.eval_batch_size=0")
    assert proc.returncode == 1
    res = _only_results(tmp_path / "logs" / "runs")
    assert res.status == "failed" and "dataset.datamodule.eval_batch_size=0" in res.error


@pytest.mark.slow  # the rule itself, in-process: test_a_dead_process_s_temporary_reference_folder_is_removed
def test_killed_evaluations_leave_no_temporary_reference_folders(run_entry, tmp_path):
    """A killed evaluation's .<dataset>.<host>.<pid>.tmp folder is removed by the next evaluation on this host;
    one of a live process (or of another host, which cannot be checked) is left alone."""
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    proc = run_entry(*TINY, "model=copy_exemplar", "logger=none")
    assert proc.returncode == 0
    (reference,) = {p.parent for p in (tmp_path / "cache" / "reference").glob("*/.complete")}
    key = reference.name.rsplit("-", 1)[0]
    host = socket.gethostname()
    stale = reference.parent / f".{key}.{host}.{dead_pid}.tmp"
    live = reference.parent / f".{key}.{host}.{os.getpid()}.tmp"
    elsewhere = reference.parent / f".{key}.another-host.{dead_pid}.tmp"
    for folder in (stale, live, elsewhere):
        (folder / "image").mkdir(parents=True)
    assert run_entry(*TINY, "model=copy_exemplar", "logger=none").returncode == 0
    assert not stale.exists() and live.exists() and elsewhere.exists()


def test_cache_files_and_folders_are_readable_by_the_group(tmp_path, monkeypatch):
    """A team shares MIDMS_CACHE: what the suite writes there gets the permissions the umask gives (not 0600)."""
    from midms.files import atomic_write_text
    from midms.models.midms.prior import build_prior
    from midms.models.midms.prior_training import _save

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.json", "{}")
        prior = build_prior(kind="ae", vae={"block_out_channels": [8, 8]}, unet={
            "block_out_channels": [8, 8], "norm_num_groups": 4, "attention_head_dim": 4, "in_channels": 3,
            "out_channels": 3, "down_block_types": ["DownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "UpBlock2D"]})  # fmt: skip
        _save(prior, {"scale_factor": 1.0}, tmp_path / "priors" / "key")
    finally:
        os.umask(old)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    folder = tmp_path / "priors" / "key"
    assert folder.stat().st_mode & 0o777 == 0o755
    assert all(p.stat().st_mode & 0o044 == 0o044 for p in folder.iterdir())  # group and others may read


def test_a_resume_with_another_config_is_refused_unless_asked_for_and_then_recorded(run_entry, tmp_path):
    cut = tmp_path / "cut"
    common = [*MIDMS, "trainer.max_epochs=2", "callbacks.step_checkpoint.every_n_train_steps=2", "~metrics.swd",
              f"hydra.run.dir={cut}"]  # fmt: skip
    killed = run_entry(*common, "+callbacks.die._target_=tiny_models.DieAtStep", "+callbacks.die.step=3")
    assert killed.returncode == 3
    first = RunRecord.read(cut / "results.json")
    other = run_entry(*common, "resume=true", "seed=7", "model.sizes.tiny.training.lr=0.01")
    assert other.returncode == 1
    said = other.stdout + other.stderr
    assert "another config than the interrupted job's" in said and "seed: 42 -> 7" in said
    assert "model.module.training.lr: 0.003 -> 0.01" in said and "resume_with_changes=true" in said
    unchanged = RunRecord.read(cut / "results.json")  # the interrupted job's record is left as it was
    assert unchanged.status == "running" and unchanged.config_hash == first.config_hash
    assert unchanged.started == first.started and unchanged.resumed == []
    same = run_entry(*common, "resume=true", "seed=7", "resume_with_changes=true")
    assert same.returncode == 0, same.stderr[-3000:]
    res = RunRecord.read(cut / "results.json")
    assert res.status == "completed" and res.config_hash != first.config_hash and res.seed == 7
    changes = res.resumed_with_changes["changes"]  # the key and the values interpolated from it
    assert res.resumed_with_changes["first_config_hash"] == first.config_hash
    assert changes["seed"] == [42, 7] and set(changes) == {"seed", "model.module.seed", "dataset.datamodule.seed"}


@pytest.mark.slow  # in-process: test_an_unreadable_cache_entry_is_trained_again_and_replaced
def test_a_truncated_cached_prior_is_trained_again(run_entry, tmp_path):
    assert run_entry(*MIDMS, "logger=none", f"hydra.run.dir={tmp_path / 'a'}").returncode == 0
    (weights,) = (tmp_path / "cache" / "priors").rglob("*.safetensors")
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])  # a disk error, an interrupted copy of a shared cache
    again = run_entry(*MIDMS, "logger=none", f"hydra.run.dir={tmp_path / 'b'}")
    assert again.returncode == 0, again.stderr[-2000:]
    said = again.stdout + again.stderr
    assert "cannot be read" in said and "training it again" in said
    assert weights.read_bytes() == intact  # retrained the same (seeded), and cached whole again
    assert RunRecord.read(tmp_path / "b" / "results.json").status == "completed"


@pytest.mark.slow  # in-process: test_the_newest_readable_checkpoint_is_resumed_from
def test_a_corrupt_last_checkpoint_falls_back_to_the_newest_intact_one(run_entry, tmp_path):
    cut = tmp_path / "cut"
    common = [*MIDMS, "trainer.max_epochs=2", "callbacks.step_checkpoint.every_n_train_steps=2", "~metrics.swd",
              f"hydra.run.dir={cut}"]  # fmt: skip
    assert run_entry(*common, "+callbacks.die._target_=tiny_models.DieAtStep", "+callbacks.die.step=5").returncode == 3
    last = cut / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    resumed = run_entry(*common, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = resumed.stdout + resumed.stderr
    assert "last.ckpt cannot be read" in said and "the newest checkpoint that can" in said
    assert RunRecord.read(cut / "results.json").status == "completed"


def test_a_pickled_object_as_checkpoint_is_refused_in_one_paragraph(run_entry, tmp_path):
    bad = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}, "callback": Heartbeat}, bad)  # a class: code that unpickling would import
    proc = run_entry(*MIDMS, "logger=none", f"ckpt_path={bad}")
    assert proc.returncode == 1
    res = _only_results(tmp_path / "logs" / "runs")
    assert res.status == "failed" and "holds Python objects" in res.error and str(bad) in res.error
    assert "weights_only=False" not in res.error and res.traceback is None and res.train is None


def test_an_unwritable_cache_or_a_broken_metric_stops_the_job_before_training(run_entry, isolated_env, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    isolated_env["MIDMS_CACHE"] = str(blocker / "cache")  # cannot be created (root may write anywhere else)
    proc = run_entry(*MIDMS, "logger=none", f"hydra.run.dir={tmp_path / 'a'}")
    res = RunRecord.read(tmp_path / "a" / "results.json")
    assert proc.returncode == 1 and res.status == "failed" and res.train is None and res.traceback is None
    assert "cannot be written" in res.error and "MIDMS_CACHE" in res.error
    isolated_env["MIDMS_CACHE"] = str(tmp_path / "cache")
    proc = run_entry(
        *MIDMS, "logger=none", "metrics.psnr._target_=midms.metrics.nope.PSNR", f"hydra.run.dir={tmp_path / 'b'}"
    )
    res = RunRecord.read(tmp_path / "b" / "results.json")
    assert proc.returncode == 1 and res.train is None and res.traceback is None
    assert "metrics.psnr" in res.error and "midms.metrics.nope.PSNR" in res.error and "~metrics.psnr" in res.error


def test_wandb_online_without_network_stops_before_training(run_entry, isolated_env, tmp_path):
    isolated_env.update(WANDB_MODE="online", WANDB_BASE_URL="http://127.0.0.1:9")  # nothing listens on port 9
    proc = run_entry(*TINY, "model=copy_exemplar", "logger=wandb")
    res = _only_results(tmp_path / "logs" / "runs")
    assert proc.returncode == 1 and res.status == "failed" and res.traceback is None
    assert "127.0.0.1:9 cannot be reached" in res.error and "WANDB_MODE=offline" in res.error and res.metrics == {}


def test_a_full_disk_is_named_and_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import errno as errno_codes

    from hydra import compose, initialize_config_dir

    import midms.evaluation.translate as translation
    from midms import runner

    def no_space(images, names, folder, image_format):
        raise OSError(errno_codes.ENOSPC, "No space left on device", str(folder / f"{names[0]}.png"))

    monkeypatch.setattr(translation, "save_images", no_space)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, "model=copy_exemplar", "logger=none",
                                           f"paths.output_dir={tmp_path / 'run'}",
                                           f"paths.cache_dir={tmp_path / 'cache'}"])  # fmt: skip
    assert math.isnan(runner.run(cfg))
    res = RunRecord.read(tmp_path / "run" / "results.json")
    assert res.status == "failed" and "No space left on the device while writing" in res.error
    assert str(tmp_path / "run" / "samples") in res.error and res.traceback is None
    assert not list((tmp_path / "cache").rglob("*.tmp"))  # the reference writer's folder is gone


def test_a_report_of_unreadable_records_lists_a_failed_row_per_file(tmp_path):
    from midms.reporting import collect_jobs

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text("{not json")
    jobs, _ = collect_jobs(tmp_path)
    assert jobs["status"].tolist() == ["failed", "failed"] and jobs["model"].isna().all()
    from midms.reporting.cli import main as report

    assert report([str(tmp_path)]) == 0  # the report is written: the jobs that failed are its content
    table = (tmp_path / "report" / "table.md").read_text()
    assert table.count("is unreadable") == 2 and "Jobs not completed" in table


@pytest.mark.parametrize("step", [pytest.param(None, marks=pytest.mark.slow), 3], ids=["prior-stage", "training"])
def test_sigterm_stops_the_job_interrupted_with_a_checkpoint_and_resume_finishes_it(run_entry, tmp_path, step):
    cut = tmp_path / "cut"
    common = [*MIDMS, "trainer.max_epochs=2", "~metrics.swd", f"hydra.run.dir={cut}"]
    term = ["+callbacks.term._target_=tiny_models.TermAt", f"+callbacks.term.step={'null' if step is None else step}"]
    stopped = run_entry(*common, *term)
    assert stopped.returncode == 1, stopped.stderr[-2000:]
    res = RunRecord.read(cut / "results.json")
    assert res.status == "interrupted" and "stopped by SIGTERM during" in res.error and "resume=true" in res.error
    checkpoints = sorted(p.name for p in (cut / "checkpoints").glob("*.ckpt")) if (cut / "checkpoints").exists() else []
    if step is None:  # the prior stage: no checkpoint yet, and the prior is not cached half-trained
        assert "prior stage" in res.error and checkpoints == []
        assert not list((tmp_path / "cache").rglob("*.safetensors"))
    else:  # after the step it was in, one last.ckpt
        assert checkpoints == ["last.ckpt"]
        assert torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == step + 1
    resumed = run_entry(*common, "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    done = RunRecord.read(cut / "results.json")
    assert done.status == "completed" and done.train["global_step"] == 8 and done.metrics
    # both checkpoint callbacks (epoch and step) write the one last.ckpt, the newest state (no last-v1.ckpt)
    assert [p.name for p in (cut / "checkpoints").glob("last*")] == ["last.ckpt"]
    assert torch.load(cut / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 8


def test_sigterm_during_evaluation_is_interrupted_and_resume_evaluates_again(tmp_path, monkeypatch):
    import signal as signals

    from hydra import compose, initialize_config_dir

    import midms.evaluation.translate as evaluator
    from midms import runner

    translate = evaluator._translate

    def translate_then_term(*args, **kwargs):
        os.kill(os.getpid(), signals.SIGTERM)  # during the first batch: the job stops before the second
        return translate(*args, **kwargs)

    def compose_job(*extra):
        with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
            return compose("config", overrides=[*TINY, "model=copy_exemplar", "logger=none", *extra,
                                               "dataset.datamodule.eval_batch_size=4",
                                               f"paths.output_dir={tmp_path / 'run'}",
                                               f"paths.cache_dir={tmp_path / 'cache'}"])  # fmt: skip

    monkeypatch.setattr(evaluator, "_translate", translate_then_term)
    before = signals.getsignal(signals.SIGTERM)
    assert math.isnan(runner.run(compose_job()))
    assert signals.getsignal(signals.SIGTERM) is before  # the job's handler is gone with the job
    res = RunRecord.read(tmp_path / "run" / "results.json")
    assert res.status == "interrupted" and "evaluation" in res.error and res.metrics == {}
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    monkeypatch.setattr(evaluator, "_translate", translate)
    runner.run(compose_job("resume=true"))
    assert RunRecord.read(tmp_path / "run" / "results.json").status == "completed"


def test_a_dead_process_s_temporary_reference_folder_is_removed(tmp_path):
    import socket

    from midms.evaluation.folder import _remove_stale

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host, root = socket.gethostname(), tmp_path / "reference"
    stale, live = root / f".key.{host}.{int(dead.stdout)}.tmp", root / f".key.{host}.{os.getpid()}.tmp"
    elsewhere, other_key = (
        root / f".key.another-host.{int(dead.stdout)}.tmp",
        root / f".other.{host}.{dead.stdout.strip()}.tmp",
    )
    for folder in (stale, live, elsewhere, other_key):
        (folder / "image").mkdir(parents=True)
    _remove_stale(root, "key")
    assert not stale.exists() and elsewhere.exists() and other_key.exists()
    assert live.exists()  # this process is alive: its folder is its own to finish


@contextlib.contextmanager
def logged(name: str):
    """The messages logger ``name`` emits meanwhile: a handler on the logger itself, which is enabled meanwhile (a
    logging configuration applied by an earlier in-process test may have disabled it or stopped its propagation to
    the root logger, where caplog listens)."""
    lines: list[str] = []
    handler = logging.Handler(logging.DEBUG)
    handler.emit = lambda record: lines.append(record.getMessage())
    logger = logging.getLogger(name)
    level, disabled, disabled_below = logger.level, logger.disabled, logging.root.manager.disable
    logger.setLevel(logging.DEBUG)
    logger.disabled = False
    logging.disable(logging.NOTSET)
    logger.addHandler(handler)
    try:
        yield lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.disabled = disabled
        logging.disable(disabled_below)


def test_an_unreadable_cache_entry_is_trained_again_and_replaced(tmp_path):
    from midms.models.midms.prior import build_prior
    from midms.models.midms.prior_training import PriorStage, prepare_prior

    def prior():
        torch.manual_seed(0)
        return build_prior(kind="ae", vae={"block_out_channels": [8, 8]}, unet={
            "block_out_channels": [8, 8], "norm_num_groups": 4, "attention_head_dim": 4, "in_channels": 3,
            "out_channels": 3, "down_block_types": ["DownBlock2D", "DownBlock2D"],
            "up_block_types": ["UpBlock2D", "UpBlock2D"]})  # fmt: skip

    images = [{"image": torch.rand(8, 3, 16, 16) * 2 - 1}]
    stage = PriorStage(ae_steps=2, unet_steps=2, batch_size=4, unet_batch_size=4, max_images=8)
    first = prepare_prior(prior(), images, stage, tmp_path, "data", {"kind": "ae"})
    (weights,) = (tmp_path).rglob("*.safetensors")
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])
    with logged("midms.models.midms.prior_training") as lines:
        again = prepare_prior(prior(), images, stage, tmp_path, "data", {"kind": "ae"})
    assert any("cannot be read" in line and "training it again" in line for line in lines)
    assert again["cache"] == first["cache"] and weights.read_bytes() == intact  # the same (seeded) training


def test_the_newest_readable_checkpoint_is_resumed_from(tmp_path):
    from midms.errors import UserError
    from midms.resume import intact_checkpoint

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for i, name in enumerate(("epoch000.ckpt", "step0000006.ckpt", "last.ckpt")):
        torch.save({"global_step": i}, folder / name)
        os.utime(folder / name, (1000 + i, 1000 + i))
    assert intact_checkpoint(folder / "last.ckpt") == folder / "last.ckpt"
    (folder / "last.ckpt").write_bytes(b"PK\x03\x04 cut short")
    with logged("midms.resume") as lines:
        assert intact_checkpoint(folder / "last.ckpt") == folder / "step0000006.ckpt"
    assert any("last.ckpt cannot be read" in line and "the newest checkpoint that can" in line for line in lines)
    for other in ("epoch000.ckpt", "step0000006.ckpt"):
        (folder / other).write_bytes(b"")
    with pytest.raises(UserError, match="no checkpoint in .* can be read"):
        intact_checkpoint(folder / "last.ckpt")
