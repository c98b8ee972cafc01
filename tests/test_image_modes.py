"""Images of every PIL mode are read as 8-bit RGB as their pixels mean it, or refused by name (midms/imageio.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from midms.evaluation.score_folders import main
from midms.imageio import UnsupportedImage, load_image, to_rgb


def _saved(tmp_path, image: Image.Image, name: str) -> np.ndarray:
    path = tmp_path / name
    image.save(path)
    return np.asarray(load_image(path))


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 257, 32896, 65535]], dtype=np.uint16)  # 8-bit 0, 1, 128, 255 times 257
    rgb = _saved(tmp_path, Image.fromarray(values), "g16.png")
    assert rgb.shape == (1, 4, 3) and rgb[0, :, 0].tolist() == [0, 1, 128, 255]
    assert (rgb[..., 0] == rgb[..., 2]).all()


@pytest.mark.parametrize("mode", ["L", "1", "P", "CMYK", "RGBA", "LA"])
def test_eight_bit_modes_read_as_their_rgb(tmp_path, mode):
    ramp = np.linspace(0, 255, 16, dtype=np.uint8)
    smooth = np.stack(np.broadcast_arrays(ramp[None, :], ramp[:, None], ramp[None, ::-1]), -1)  # 16×16×3
    image = Image.fromarray(smooth).convert(mode)
    expected = np.asarray(image.convert("RGB")).astype(int)  # the mode's own pixels, as RGB
    suffix = "jpg" if mode in ("CMYK", "YCbCr") else "png"
    got = _saved(tmp_path, image, f"x.{suffix}")
    tolerance = 12 if suffix == "jpg" else 0  # JPEG is lossy; PNG keeps the pixels
    assert got.shape == (16, 16, 3) and np.abs(got.astype(int) - expected).max() <= tolerance
    if mode in ("L", "1", "LA"):
        assert (got[..., 0] == got[..., 1]).all() and (got[..., 1] == got[..., 2]).all()  # grey stays grey
    ycbcr = Image.fromarray(smooth).convert("YCbCr")  # a mode no file here keeps: converted in memory
    assert np.array_equal(np.asarray(to_rgb(ycbcr)), np.asarray(ycbcr.convert("RGB")))


def test_transparency_and_pixels_without_an_rgb_reading_are_refused_by_name(tmp_path):
    rgba = np.full((4, 4, 4), 200, dtype=np.uint8)
    rgba[0, 0, 3] = 0
    for name, image in (
        ("alpha.png", Image.fromarray(rgba, "RGBA")),
        ("float.tif", Image.fromarray(np.ones((4, 4), np.float32))),
    ):
        path = tmp_path / name
        image.save(path)
        with pytest.raises(UnsupportedImage, match=str(path)) as info:
            load_image(path)
        assert "mode" in str(info.value)
    with pytest.raises(UnsupportedImage, match="outside 0..65535"):
        to_rgb(Image.fromarray(np.array([[-5, 70000]], dtype=np.int32)), "neg.png")


def test_midms_eval_scores_a_sixteen_bit_png_by_its_values(tmp_path, capsys):
    grey8 = np.random.default_rng(1).integers(0, 256, (16, 16), dtype=np.uint8)
    for folder, image in (("fake", Image.fromarray(grey8.astype(np.uint16) * 257)), ("real", Image.fromarray(grey8))):
        (tmp_path / folder).mkdir()
        image.save(tmp_path / folder / "a.png")
    fake, real = str(tmp_path / "fake"), str(tmp_path / "real")
    code = main(["--fake", fake, "--real", real, "--target", real, "--metrics", "psnr", "--size", "16",
                 "--device", "cpu", "--cache-dir", str(tmp_path / "c")])  # fmt: skip
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["metrics"]["psnr"] >= 100  # the same picture (was read 99.6 % white)
    alpha = np.zeros((16, 16, 4), np.uint8)
    Image.fromarray(alpha, "RGBA").save(tmp_path / "fake" / "a.png")
    assert main(["--fake", fake, "--real", real, "--metrics", "psnr", "--size", "16", "--device", "cpu"]) == 2
