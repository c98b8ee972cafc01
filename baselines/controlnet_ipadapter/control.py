"""The suite's input semantics drawn as the condition images the released ControlNets were trained on.

- ``edges`` (``lllyasviel/sd-controlnet-canny``): white edges on black, RGB in [0, 1]. The edge channel is the
  dataset's: channel 0 of CoCosNet's CelebA-HQ edge tensor (the face-part boundaries united with the Canny edges
  of the photo) or the synthetic data's one edge channel.
- ``ade20k`` (``lllyasviel/sd-controlnet-seg``): each pixel in the ADE20K colour of its class, as ControlNet's
  segmentation annotator draws it (``ade20k_palette.json``: class k in palette entry k-1); label 0 ("unknown",
  which the annotator never predicts) is black.
- ``pose`` (``lllyasviel/sd-controlnet-openpose``): the first three channels of DeepFashion's input, the OpenPose
  skeleton as CoCosNet draws it (:mod:`midms.data.pose`: OpenPose's colours, circles of radius 4 at the keypoints,
  limbs as ellipses blended at 0.6), which is how ControlNet's openpose annotator draws a body.

Both are resized to the generation size with nearest-neighbour sampling: no new edge or label values appear.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from midms.data.pose import POSE_CHANNELS
from midms.errors import UserError

CONTROLS = ("edges", "ade20k", "pose")
PALETTE_FILE = Path(__file__).with_name("ade20k_palette.json")


@cache
def ade20k_palette() -> Tensor:
    """150×3 uint8: row k-1 is the colour of ADE20K class k."""
    palette = torch.tensor(json.loads(PALETTE_FILE.read_text())["palette"], dtype=torch.uint8)
    if palette.shape != (150, 3):
        raise ValueError(f"{PALETTE_FILE} must hold 150 RGB colours, got {tuple(palette.shape)}")
    return palette


def control_image(semantics: Tensor, kind: str, size: int, edge_channel: int = 0) -> Tensor:
    """``semantics`` (B×C×H×W) -> the ControlNet's condition, B×3×size×size in [0, 1] (float32)."""
    if kind == "edges":
        if edge_channel >= semantics.shape[1]:
            raise UserError(f"control=edges reads edge channel {edge_channel}, but the input has {semantics.shape[1]}")
        image = semantics[:, edge_channel : edge_channel + 1].float().clamp(0, 1).expand(-1, 3, -1, -1)
    elif kind == "ade20k":
        if semantics.shape[1] != 151:
            raise UserError(
                f"control=ade20k needs one-hot ADE20K labels (151 channels: unknown + 150 classes), got "
                f"{semantics.shape[1]} channels; use control=edges for edge inputs."
            )
        labels = semantics.argmax(dim=1)  # B×H×W in 0..150
        colours = torch.cat([torch.zeros(1, 3, dtype=torch.uint8), ade20k_palette()]).to(semantics.device)
        image = colours[labels].permute(0, 3, 1, 2).float() / 255
    elif kind == "pose":
        if semantics.shape[1] != POSE_CHANNELS:
            raise UserError(
                f"control=pose needs DeepFashion's pose input ({POSE_CHANNELS} channels: the skeleton drawing, then "
                f"the limb distances), got {semantics.shape[1]} channels"
            )
        image = semantics[:, :3].float().clamp(0, 1)
    else:
        raise UserError(f"control must be one of {CONTROLS}, got {kind!r}")
    return F.interpolate(image, size=(size, size), mode="nearest")
