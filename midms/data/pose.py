"""The pose input of CoCosNet's DeepFashion model: an OpenPose skeleton drawing and 17 limb distance maps.

CoCosNet (Zhang et al., CVPR 2020; github.com/microsoft/CoCosNet, ``data/deepfashion_dataset.py``,
``get_label_tensor``) reads each photo's OpenPose result (two text files, ``<name>_candidate.txt``: one keypoint a
row, x and y first; ``<name>_subset.txt``: for each of the 18 COCO keypoints the row of its candidate, -1 when not
found) and builds a 20-channel input:

- channels 0-2: the skeleton drawn on a black canvas of the photo's size: a filled circle of radius 4 at each
  keypoint, then each limb as a filled ellipse (half-axes: half the limb's length and 4 px) blended over the drawing
  so far at 0.6, in OpenPose's 18 colours (drawn in OpenCV's BGR order, read back as RGB), resized to the load size
  by nearest neighbour, in [0, 1];
- channels 3-19: for each of the first 17 limbs, the L1 distance (3x3 mask) of every pixel to the limb's ellipse,
  divided by 3, clipped to [0, 255] and truncated to 8 bits, resized bilinearly, in [0, 1] (a missing limb: no
  zero pixel, so its map is 255 everywhere).

The drawing uses OpenCV's rasteriser, as the official code does, so that the input is the same to the bit on the
same files (an ellipse's polygon, the anti-alias-free fill and the blend's rounding are OpenCV's). The limb list and
the colours are OpenPose's (the body-pose demo of github.com/Hzzone/pytorch-openpose, which CoCosNet's README names
as its pose estimator).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image

from midms.imageio import UnreadableFile

#: keypoints of the COCO body model (OpenPose's 18)
KEYPOINTS = 18
#: OpenPose's limbs as 1-based keypoint pairs; CoCosNet draws the first 17 (the last two join ears to shoulders)
LIMBS = (
    (2, 3), (2, 6), (3, 4), (4, 5), (6, 7), (7, 8), (2, 9), (9, 10), (10, 11), (2, 12), (12, 13), (13, 14),
    (2, 1), (1, 15), (15, 17), (1, 16), (16, 18), (3, 17), (6, 18),
)  # fmt: skip
DRAWN_LIMBS = 17
#: OpenPose's colours, one a keypoint and limb, as BGR triples of the canvas (the drawing is converted to RGB)
COLOURS = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
KEYPOINT_RADIUS = 4
STICK_HALF_WIDTH = 4
LIMB_BLEND = 0.6  # the new limb's weight over the drawing so far
DISTANCE_DIVISOR = 3
#: the channels of the input: the RGB skeleton, then one distance map a drawn limb
POSE_CHANNELS = 3 + DRAWN_LIMBS


def _cv2():
    try:
        import cv2
    except ImportError as err:  # a dependency of the project: only a broken install lacks it
        raise ImportError(
            "DeepFashion's pose input is drawn with OpenCV: pip install opencv-python-headless (a dependency of "
            "this project: pip install -e . installs it)"
        ) from err
    return cv2


def pose_files(pose_stem: Path) -> tuple[Path, Path]:
    """The candidate and subset files of ``<pose folder>/<name>`` (OpenPose's output, as CoCosNet names them)."""
    return pose_stem.with_name(pose_stem.name + "_candidate.txt"), pose_stem.with_name(pose_stem.name + "_subset.txt")


def read_pose(pose_stem: Path) -> tuple[np.ndarray, np.ndarray]:
    """The keypoint table (N×>=2, float) and the 18 keypoint rows (float, -1 = not found) of one photo.

    Raises :class:`~midms.imageio.UnreadableFile` naming the file when it is missing or malformed."""
    candidate_file, subset_file = pose_files(pose_stem)
    tables = []
    for path in (candidate_file, subset_file):
        try:
            tables.append(np.loadtxt(path, dtype=np.float64, ndmin=1))
        except FileNotFoundError as err:
            raise UnreadableFile(path, "missing") from err
        except ValueError as err:
            raise UnreadableFile(path, f"not a table of numbers ({err})") from err
    candidate, subset = tables
    candidate = candidate.reshape(1, -1) if candidate.ndim == 1 and candidate.size else candidate
    if subset.ndim != 1 or subset.size < KEYPOINTS:
        raise UnreadableFile(
            subset_file,
            f"expected one person's row of at least {KEYPOINTS} keypoint indices, got shape {subset.shape} "
            "(CoCosNet's reader takes a single person)",
        )
    used = subset[:KEYPOINTS][subset[:KEYPOINTS] >= 0].astype(int)
    if used.size and (candidate.ndim != 2 or candidate.shape[1] < 2 or used.max() >= candidate.shape[0]):
        raise UnreadableFile(
            subset_file, f"refers to keypoint row {used.max()}, but {candidate_file.name} has {len(candidate)} rows"
        )
    return candidate, subset


def render_pose(
    candidate: np.ndarray,
    subset: np.ndarray,
    height: int,
    width: int,
    radius: int = KEYPOINT_RADIUS,
    stick: int = STICK_HALF_WIDTH,
) -> tuple[np.ndarray, np.ndarray]:
    """The skeleton drawing (H×W×3 uint8, RGB) and the 17 limb masks (17×H×W uint8, 255 inside) of one person;
    ``radius`` of the keypoints and ``stick`` half-width of the limbs (CoCosNet's 4 and 4; CoCosNet v2's 20 and 20 on
    its 1024-pixel DeepFashion-HD canvas)."""
    cv2 = _cv2()
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for k in range(KEYPOINTS):
        row = int(subset[k])
        if row != -1:
            x, y = candidate[row][0:2]
            cv2.circle(canvas, (int(x), int(y)), radius, COLOURS[k], thickness=-1)
    limbs = np.zeros((DRAWN_LIMBS, height, width), dtype=np.uint8)
    for k in range(DRAWN_LIMBS):
        rows = subset[np.array(LIMBS[k]) - 1]
        if -1 in rows:
            continue
        xs, ys = candidate[rows.astype(int), 0], candidate[rows.astype(int), 1]
        length = ((ys[0] - ys[1]) ** 2 + (xs[0] - xs[1]) ** 2) ** 0.5  # this formula: int(length / 2) is the axis
        angle = math.degrees(math.atan2(ys[0] - ys[1], xs[0] - xs[1]))
        centre = (int(np.mean(xs)), int(np.mean(ys)))
        polygon = cv2.ellipse2Poly(centre, (int(length / 2), stick), int(angle), 0, 360, 1)
        limb_layer = canvas.copy()
        cv2.fillConvexPoly(limb_layer, polygon, COLOURS[k])
        canvas = cv2.addWeighted(canvas, 1 - LIMB_BLEND, limb_layer, LIMB_BLEND, 0)
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillConvexPoly(mask, polygon, 255)
        limbs[k] = cv2.addWeighted(mask, 1 - LIMB_BLEND, mask, LIMB_BLEND, 0)  # as drawn officially (255 stays)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB), limbs


def limb_distance(mask: np.ndarray) -> np.ndarray:
    """uint8 H×W: the L1 distance (OpenCV's 3×3 mask) of each pixel to the limb, / 3, clipped and truncated."""
    cv2 = _cv2()
    distance = cv2.distanceTransform(255 - mask, cv2.DIST_L1, 3)  # float32
    return np.clip(distance / DISTANCE_DIVISOR, 0, 255).astype(np.uint8)


def pose_input(
    candidate: np.ndarray,
    subset: np.ndarray,
    height: int,
    width: int,
    size: int,
    radius: int = KEYPOINT_RADIUS,
    stick: int = STICK_HALF_WIDTH,
) -> np.ndarray:
    """The 20 channels at ``size``×``size`` (uint8, 20×size×size): the skeleton resized by nearest neighbour, the
    distance maps bilinearly (PIL, as torchvision's ``Resize`` of the official transforms)."""
    skeleton, limbs = render_pose(candidate, subset, height, width, radius, stick)
    out = np.empty((POSE_CHANNELS, size, size), dtype=np.uint8)
    out[:3] = np.asarray(Image.fromarray(skeleton).resize((size, size), Image.NEAREST)).transpose(2, 0, 1)
    for k in range(DRAWN_LIMBS):
        out[3 + k] = np.asarray(Image.fromarray(limb_distance(limbs[k])).resize((size, size), Image.BILINEAR))
    return out
