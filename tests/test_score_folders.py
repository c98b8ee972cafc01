"""``midms-eval``: the suite's metrics on folders of another codebase's outputs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from midms.evaluation.score_folders import main


def _folder(path, names, seed, size=32, suffix=".png"):
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for n in names:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path / f"{n}{suffix}")
    return path


def _run(capsys, *argv):
    code = main([*argv, "--device", "cpu"])
    return code, capsys.readouterr()


def test_scores_matched_folders_and_reports_skips(tmp_path, capsys):
    names = [f"img_{i}" for i in range(6)]
    fake, real = _folder(tmp_path / "fake", names, 0), _folder(tmp_path / "real", names, 1)
    target = _folder(tmp_path / "target", names, 2)
    code, out = _run(capsys, "--fake", str(fake), "--real", str(real), "--target", str(target),
                     "--metrics", "psnr,swd,style", "--size", "32", "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    assert code == 0, out.err
    result = json.loads(out.out)
    # PSNR against a plain numpy computation on the files
    psnr = [
        10 * np.log10(1 / np.mean((np.asarray(Image.open(fake / f"{n}.png"), float) / 255
                                    - np.asarray(Image.open(target / f"{n}.png"), float) / 255) ** 2))
        for n in names
    ]  # fmt: skip
    assert result["metrics"]["psnr"] == pytest.approx(np.mean(psnr), rel=1e-5)
    assert {"swd", "swd_32", "swd_16"} <= set(result["metrics"])
    assert "VGG19 weights not found" in result["skipped"]["style"]  # offline here: skipped with the reason
    assert result["protocol"]["num_images"] == 6 and result["protocol"]["image_format"] == "png"


def test_unmatched_names_and_empty_folders_are_errors_that_say_which(tmp_path, capsys, caplog):
    fake = _folder(tmp_path / "fake", ["a", "b", "c"], 0)
    real = _folder(tmp_path / "real", ["a", "b"], 1)
    code, out = _run(capsys, "--fake", str(fake), "--real", str(real), "--metrics", "psnr")
    assert code == 2 and "['c']" in caplog.text and out.out == ""
    (tmp_path / "empty").mkdir()
    code, out = _run(capsys, "--fake", str(tmp_path / "empty"), "--real", str(real))
    assert code == 2 and "holds no images" in caplog.text
    code, out = _run(capsys, "--fake", str(fake), "--real", str(fake), "--metrics", "nope")
    assert code == 2 and "unknown metrics ['nope']" in caplog.text


def test_bad_inputs_are_named_without_tracebacks(tmp_path, capsys, caplog):
    names = ["a", "b", "c"]
    real = _folder(tmp_path / "real", names, 1)
    twins = _folder(tmp_path / "twins", names, 0)
    Image.open(twins / "a.png").save(twins / "a.jpg")  # one name, two pictures
    code, out = _run(capsys, "--fake", str(twins), "--real", str(real), "--metrics", "psnr", "--size", "32")
    assert code == 2 and "['a.jpg', 'a.png']" in caplog.text and "Traceback" not in out.err
    broken = _folder(tmp_path / "broken", names, 0)
    (broken / "b.png").write_bytes(b"not a png")  # named .png, is not one
    code, out = _run(capsys, "--fake", str(broken), "--real", str(real), "--metrics", "psnr", "--size", "32")
    assert code == 2 and f"{broken / 'b.png'}" in caplog.text and "Traceback" not in out.err


def test_other_sizes_need_resize_which_is_recorded(tmp_path, capsys, caplog):
    names = ["a", "b", "c"]
    fake, real = _folder(tmp_path / "fake", names, 0, size=48), _folder(tmp_path / "real", names, 1)
    args = ["--fake", str(fake), "--real", str(real), "--metrics", "swd", "--size", "32"]
    code, out = _run(capsys, *args)
    assert code == 2 and "not 32×32 px" in caplog.text and "fake: a.png 48×48" in caplog.text
    code, out = _run(capsys, *args, "--resize", "--cache-dir", str(tmp_path / "c"))
    assert code == 0, out.err
    resize = json.loads(out.out)["protocol"]["resize"]
    assert resize["to"] == 32 and resize["from"] == [[32, 32], [48, 48]]
    assert resize["filter"].startswith("PIL bilinear")  # as the VGG metric scripts resize (torchvision Resize)
    from midms.imageio import load_image_tensor

    expected = np.asarray(Image.open(fake / "a.png").resize((32, 32), Image.BILINEAR))
    assert np.array_equal(load_image_tensor(fake / "a.png", 32).permute(1, 2, 0).numpy(), expected)


def test_the_vgg_metrics_take_the_papers_weights_from_the_command_line(tmp_path, capsys, caplog):
    from midms.evaluation.score_folders import build_metrics

    weights = tmp_path / "vgg19_conv.pth"
    weights.write_bytes(b"")
    metrics = build_metrics(["semantic", "style", "psnr"], "default", str(weights))
    assert metrics["semantic"].weights == str(weights) and metrics["style"].weights == str(weights)
    assert build_metrics(["semantic"], "default")["semantic"].weights == "torchvision"  # the preset's, without it
    names = ["a", "b"]
    fake, real = _folder(tmp_path / "fake", names, 0), _folder(tmp_path / "real", names, 1)
    code, out = _run(capsys, "--fake", str(fake), "--real", str(real), "--metrics", "semantic", "--size", "32",
                     "--vgg-weights", str(tmp_path / "absent.pth"))  # fmt: skip
    assert code == 2 and "--vgg-weights" in caplog.text and "absent.pth" in caplog.text


def test_a_single_image_skips_distribution_metrics_with_the_reason(tmp_path, capsys):
    fake, real = _folder(tmp_path / "fake", ["a"], 0), _folder(tmp_path / "real", ["a"], 1)
    target = _folder(tmp_path / "target", ["a"], 2)
    code, out = _run(capsys, "--fake", str(fake), "--real", str(real), "--target", str(target),
                     "--metrics", "psnr,swd,fid,kid", "--size", "32", "--cache-dir", str(tmp_path / "c"))  # fmt: skip
    assert code == 0 and "Traceback" not in out.err
    result = json.loads(out.out)
    assert set(result["metrics"]) == {"psnr"}
    assert result["skipped"]["swd"] == "needs at least 2 images, got 1"
    assert not result["metric_errors"]
