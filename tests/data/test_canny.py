"""Channel 0's Canny as the released CoCosNet models saw it (scikit-image 0.14.2), on fixed images."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from canny_images import fixed_images
from skimage import feature

from midms.data.canny import canny_edges, canny_uint8
from midms.data.celebahq import edge_tensor

EXPECTED = json.loads((Path(__file__).resolve().parents[1] / "support" / "canny_0142_expected.json").read_text())


def expected(name: str) -> np.ndarray:
    entry = EXPECTED[name]
    bits = np.frombuffer(base64.b64decode(entry["packed"]), dtype=np.uint8)
    return np.unpackbits(bits)[: np.prod(entry["shape"])].reshape(entry["shape"]).astype(bool)


@pytest.mark.parametrize("name", ["noise", "shapes", "ramp"])
def test_official_canny_is_scikit_image_0_14_2_to_the_pixel(name):
    image = fixed_images()[name]
    want = expected(name)
    assert want.sum() == EXPECTED[name]["edges"] > 0
    np.testing.assert_array_equal(canny_uint8(image), want)
    np.testing.assert_array_equal(canny_edges(image, "official"), want)


def test_todays_canny_differs_and_stays_available():
    image = fixed_images()["shapes"]
    np.testing.assert_array_equal(canny_edges(image, "current"), feature.canny(image))
    assert (canny_edges(image, "current") != expected("shapes")).sum() > 0  # why the option exists
    with pytest.raises(ValueError, match="official"):
        canny_edges(image, "opencv")


def test_the_edge_tensor_takes_the_chosen_canny():
    grey = fixed_images()["shapes"]
    official, current = edge_tensor({}, grey, "official"), edge_tensor({}, grey, "current")
    np.testing.assert_array_equal(official[0] == 255, expected("shapes"))  # no parts: channel 0 is the Canny alone
    np.testing.assert_array_equal(current[0] == 255, feature.canny(grey))
    np.testing.assert_array_equal(official[1:], current[1:])  # the distance channels do not use Canny
