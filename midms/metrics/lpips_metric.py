"""LPIPS against the ground truth, and LPIPS diversity across exemplars, with the ``lpips`` package.

LPIPS: Zhang et al., "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric", CVPR 2018
(https://github.com/richzhang/PerceptualSimilarity, the ``lpips`` package, version 0.1 of its linear
layers). Lower means closer.

- :class:`LPIPS` (``lpips``): output vs the ground-truth translation ``target``, where the dataset has one
  (the synthetic dataset); mean over images.
- :class:`LPIPSDiversity` (``lpips_diversity``): how different the outputs for one input are when the
  exemplar changes: the mean LPIPS over all pairs of outputs of the same input, averaged over the inputs
  that were evaluated with several exemplars (the multimodal-diversity score of e.g. BicycleGAN and MUNIT,
  used by exemplar-based translation papers). Higher means more diverse; it is a separate metric because
  its direction is opposite to ``lpips``.

Weights. ``lpips`` ships its linear layers inside the package (``lpips/weights/v0.1/<net>.pth``) but gets
the backbone through torchvision, which would download ``alexnet-owt-7be5be79.pth`` /
``vgg16-397923af.pth`` into ``torch.hub.get_dir()/checkpoints``. Both files are checked before anything
is built; the package's network is built with a random backbone (no download) and the cached torchvision
weights are copied into it. A missing file skips the metric with the file, its place and the fix.
"""

from __future__ import annotations

import itertools
import logging
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from midms.errors import MetricSkipped, UserError
from midms.imageio import array_to_tensor
from midms.metrics.base import EvalBatch, EvalContext, Metric, input_id_of
from midms.metrics.folders import to_unit
from midms.nn.vgg import WeightsUnavailable
from midms.weights import load_checkpoint, verified_sha256

log = logging.getLogger(__name__)

NETS = ("alex", "vgg")
TRUNK_FILES = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}
TRUNK_BUILDERS = {"alex": "alexnet", "vgg": "vgg16"}
NO_TARGET = "dataset has no ground-truth target (only the synthetic dataset has one)"


def linear_weights_path(net: str, version: str = "0.1") -> Path:
    """The linear-layer weights shipped inside the ``lpips`` package."""
    import lpips

    return Path(lpips.__file__).parent / "weights" / f"v{version}" / f"{net}.pth"


def trunk_weights_path(net: str) -> Path:
    """Where torchvision caches the backbone that ``lpips`` uses."""
    return Path(torch.hub.get_dir()) / "checkpoints" / TRUNK_FILES[net]


def _check_files(net: str, version: str) -> tuple[Path, Path]:
    lin = linear_weights_path(net, version)
    if not lin.is_file():
        raise WeightsUnavailable(
            f"LPIPS linear-layer weights not found: {lin} (shipped inside the lpips package). "
            f"Fix: `pip install --force-reinstall lpips==0.1.4`.",
            lin,
        )
    trunk = trunk_weights_path(net)
    if not trunk.is_file():
        raise WeightsUnavailable(
            f"LPIPS backbone weights not found: {trunk} (torchvision's cache, torch.hub.get_dir()/checkpoints; "
            f'move it with $TORCH_HOME). Fix: on a machine with internet run `python -c "import torchvision; '
            f"torchvision.models.{TRUNK_BUILDERS[net]}(weights='IMAGENET1K_V1')\"` and copy {TRUNK_FILES[net]} there.",
            trunk,
        )
    return lin, trunk


def load_trunk(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Copy torchvision backbone weights (``features.<i>.weight``) into an ``lpips.LPIPS`` network.

    ``lpips`` splits torchvision's ``features`` into ``slice1..sliceN`` and keeps the layer index as the
    module name (``net.slice2.3`` is ``features.3``), so the mapping is by that index. Every backbone
    parameter must be found; the classifier entries of the file are not used.
    """
    mapped: dict[str, Tensor] = {}
    for key in model.net.state_dict():
        _slice, index, param = key.split(".")
        source = f"features.{index}.{param}"
        if source not in state:
            raise UserError(f"LPIPS backbone file lacks {source} (needed for net.{key}); replace the file.")
        mapped[key] = state[source]
    model.net.load_state_dict(mapped, strict=True)


def load_linear(model: nn.Module, state: dict[str, Tensor]) -> None:
    """Load the package's linear layers (``lin<k>.model.1.weight``), checking that every one is there."""
    expected = {k for k in model.state_dict() if k.startswith("lin") and not k.startswith("lins.")}
    if missing := sorted(expected - state.keys()):
        raise UserError(f"LPIPS linear-layer file lacks {missing}; reinstall lpips.")
    if unexpected := sorted(state.keys() - expected):
        raise UserError(f"LPIPS linear-layer file has unexpected entries {unexpected}; reinstall lpips.")
    model.load_state_dict(state, strict=False)


def build_lpips(net: str = "alex", version: str = "0.1") -> tuple[nn.Module, str]:
    """An ``lpips.LPIPS`` network with its published weights, built without any download."""
    import lpips

    lin_path, trunk_path = _check_files(net, version)
    with warnings.catch_warnings():  # lpips passes torchvision's deprecated ``pretrained`` flag
        warnings.simplefilter("ignore")
        model = lpips.LPIPS(net=net, version=version, pretrained=False, pnet_rand=True, verbose=False)
    verified_sha256(trunk_path, f"https://download.pytorch.org/models/{trunk_path.name}")
    load_trunk(model, load_checkpoint(trunk_path, f"the LPIPS {net} backbone"))
    load_linear(model, load_checkpoint(lin_path, f"the LPIPS {net} linear layers"))
    log.info("LPIPS %s v%s: backbone %s, linear layers %s", net, version, trunk_path, lin_path)
    return model.eval(), f"lpips-v{version}-{net} (backbone {trunk_path.name}, linear {lin_path.name})"


def input_ids(batch: EvalBatch) -> list[str]:
    """The input id of every output: ``batch.input_ids`` when given, else the part of the name before ``__``."""
    if batch.input_ids is not None:
        return list(batch.input_ids)
    return [input_id_of(name) for name in batch.names]


class _LPIPSMetric(Metric):
    """Builds the LPIPS network in :meth:`setup` (or takes an injected one) and measures pairs in chunks."""

    def __init__(self, name: str, net: str, version: str, batch_size: int, model: nn.Module | None) -> None:
        super().__init__(name)
        if net not in NETS:
            raise UserError(f"{name}: net must be one of {NETS}, got {net!r}")
        if batch_size < 1:
            raise UserError(f"{name}: batch_size must be positive, got {batch_size}")
        self.net, self.version, self.batch_size = net, str(version), batch_size
        self._injected = model
        self.model: nn.Module | None = None
        self.weights_id = ""

    def setup(self, ctx: EvalContext) -> None:
        if self._injected is not None:
            model, self.weights_id = self._injected, f"injected:{type(self._injected).__name__}"
        else:
            try:
                model, self.weights_id = build_lpips(self.net, self.version)
            except WeightsUnavailable as e:
                raise MetricSkipped(str(e)) from e
        self.model = model.to(ctx.device).eval()
        self.device = ctx.device

    @torch.no_grad()
    def distance(self, a: Tensor, b: Tensor) -> Tensor:
        """LPIPS of image pairs in [0, 1] (B×3×H×W each) -> B."""
        assert self.model is not None, "setup() was not called"
        out = [
            self.model(a[i : i + self.batch_size], b[i : i + self.batch_size], normalize=True).flatten()
            for i in range(0, a.shape[0], self.batch_size)
        ]
        return torch.cat(out)


class LPIPS(_LPIPSMetric):
    """LPIPS between each output and its ground-truth ``target``. Lower is better.

    Config::

        lpips:
          _target_: midms.metrics.lpips_metric.LPIPS
          net: alex          # alex | vgg
          version: "0.1"
          batch_size: 32

    ``model`` (not a config value) injects a ready ``lpips.LPIPS``-like network for tests.
    """

    higher_is_better = False

    def __init__(
        self,
        net: str = "alex",
        version: str = "0.1",
        batch_size: int = 32,
        name: str = "lpips",
        model: nn.Module | None = None,
    ) -> None:
        super().__init__(name, net, version, batch_size, model)

    def setup(self, ctx: EvalContext) -> None:
        super().setup(ctx)
        self._values: list[Tensor] = []

    def check_batch(self, batch: EvalBatch) -> None:
        if batch.target is None:
            raise MetricSkipped(NO_TARGET)

    def update(self, batch: EvalBatch) -> dict[str, Tensor]:
        if batch.target is None:
            raise MetricSkipped(NO_TARGET)
        values = self.distance(batch.fake, batch.target)
        self._values.append(values.detach().double().cpu())
        return {self.name: values}

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        if not self._values:
            raise MetricSkipped("no images were evaluated")
        self.protocol = {
            "weights": self.weights_id,
            "compared": "output vs ground-truth target",
            "aggregation": "mean over images",
        }
        return {self.name: float(torch.cat(self._values).mean())}


class LPIPSDiversity(_LPIPSMetric):
    """Mean LPIPS between outputs of the same input made with different exemplars. Higher is more diverse.

    Outputs are grouped by input id (``EvalBatch.input_ids``, or the sample name up to ``__``: the
    evaluator names outputs ``<id>`` and ``<id>__<exemplar_id>``). In :meth:`compute` the saved images of
    every group with two or more outputs are read back from ``ctx.samples_dir``; the value is the mean over
    such inputs of the mean LPIPS over all their output pairs. Skipped when every input has one exemplar.

    Config::

        lpips_diversity:
          _target_: midms.metrics.lpips_metric.LPIPSDiversity
          net: alex
          batch_size: 32
    """

    higher_is_better = True
    reads_folders = True  # the outputs again, in compute: from the scoring's decoded images

    def __init__(
        self,
        net: str = "alex",
        version: str = "0.1",
        batch_size: int = 32,
        name: str = "lpips_diversity",
        model: nn.Module | None = None,
    ) -> None:
        super().__init__(name, net, version, batch_size, model)

    def setup(self, ctx: EvalContext) -> None:
        super().setup(ctx)
        self._groups: dict[str, list[str]] = {}

    def update(self, batch: EvalBatch) -> None:
        for input_id, name in zip(input_ids(batch), batch.names, strict=True):
            self._groups.setdefault(input_id, []).append(name)
        return None

    def compute(self, ctx: EvalContext) -> dict[str, float]:
        groups = {k: names for k, names in self._groups.items() if len(names) > 1}
        if not groups:
            raise MetricSkipped(
                "every input was evaluated with a single exemplar; lpips_diversity needs several exemplars per "
                "input: set evaluation.exemplars_per_input=k (k > 1)"
            )
        per_input = [self._group_diversity(ctx, names) for names in groups.values()]
        pairs = sum(len(n) * (len(n) - 1) // 2 for n in groups.values())
        self.protocol = {
            "weights": self.weights_id,
            "inputs": len(groups),
            "pairs": pairs,
            "inputs_with_one_output": len(self._groups) - len(groups),
            "aggregation": "mean over inputs of the mean LPIPS over all pairs of that input's outputs",
        }
        return {self.name: float(torch.tensor(per_input, dtype=torch.float64).mean())}

    def _group_diversity(self, ctx: EvalContext, names: Sequence[str]) -> float:
        decoded = [array_to_tensor(ctx.features.image(self._sample_path(ctx, n))) for n in names]
        images = to_unit(torch.stack(decoded)).to(self.device)
        i, j = map(list, zip(*itertools.combinations(range(len(names)), 2), strict=True))
        return float(self.distance(images[i], images[j]).double().mean())

    @staticmethod
    def _sample_path(ctx: EvalContext, name: str) -> Path:
        path = ctx.samples_dir / f"{name}.{ctx.image_format}"
        if not path.is_file():
            raise UserError(f"lpips_diversity: the saved output {path} is missing; re-run the evaluation.")
        return path
