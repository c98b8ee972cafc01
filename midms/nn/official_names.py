"""Official CoCosNet, MIDMs and SPADE checkpoints: their tensor names converted to this suite's, and a strict load.

Both official codes build on CoCosNet's networks (https://github.com/microsoft/CoCosNet, ``models/networks/``;
https://github.com/cvlab-kaist/MIDMs, ``models/generator.py``, ``models/midms.py``), with SPADE blocks whose MLP is
``mlp_shared`` / ``mlp_gamma`` / ``mlp_beta``, spectral norm in the old hook form (``weight_orig``, ``weight_u``,
``weight_v``) and matching trunks of residual blocks ``layer.i`` (``conv1``, ``prelu``, ``conv2``). The same layers
exist here (:mod:`midms.nn.blocks`) with ``torch.nn.utils.parametrizations.spectral_norm`` (``original``, ``_u``,
``_v``: the same tensors, the same forward in evaluation) and the trunk as ``trunk.i.body`` with its one PReLU also
reachable as ``trunk.i.act``. The model-specific prefixes are in ``baselines/cocosnet/released.py`` and
``midms/models/midms/released.py``; SPADE's (https://github.com/NVlabs/SPADE) in ``baselines/spade/released.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from torch import Tensor, nn

from midms.errors import UserError
from midms.weights import load_checkpoint

Rules = Iterable[tuple[re.Pattern, str]]

#: (official, this suite's) name fragments: SPADE's MLP inside a key, the old spectral-norm hook at its end
_SPADE_AND_SPECTRAL_NORM_NAMES = (
    (".mlp_shared.", ".shared.", False),
    (".mlp_gamma.", ".gamma.", False),
    (".mlp_beta.", ".beta.", False),
    (".weight_orig", ".parametrizations.weight.original", True),
    (".weight_u", ".parametrizations.weight.0._u", True),
    (".weight_v", ".parametrizations.weight.0._v", True),
)


def _rules(pairs: Iterable[tuple[str, str, bool]]) -> tuple[tuple[re.Pattern, str], ...]:
    return tuple((re.compile(re.escape(a) + ("$" if at_end else "")), b) for a, b, at_end in pairs)


#: SPADE's MLP and the old spectral-norm hook -> this suite's names
SPADE_AND_SPECTRAL_NORM = _rules(_SPADE_AND_SPECTRAL_NORM_NAMES)
#: the inverse: this suite's names -> the official ones (error messages name both)
SPADE_AND_SPECTRAL_NORM_INVERSE = _rules((b, a, end) for a, b, end in _SPADE_AND_SPECTRAL_NORM_NAMES)
_TRUNK = re.compile(r"^layer\.(\d+)\.(conv1|prelu|conv2)\.(.+)$")
_TRUNK_PARTS = {"conv1": "body.1", "prelu": "body.3", "conv2": "body.5"}
_OUR_TRUNK = re.compile(r"^trunk\.(\d+)\.(body\.1|body\.3|body\.5|act)\.")
_OFFICIAL_TRUNK_PARTS = {"body.1": "conv1", "body.3": "prelu", "body.5": "conv2", "act": "prelu"}


def rename(key: str, rules: Rules) -> str:
    for pattern, replacement in rules:
        key = pattern.sub(replacement, key)
    return key


def trunk_names(key: str) -> list[str] | None:
    """``layer.i.{conv1,prelu,conv2}.x`` -> this suite's name(s) (two for the shared PReLU), else None."""
    match = _TRUNK.match(key)
    if not match:
        return None
    i, part, leaf = match.groups()
    names = [f"trunk.{i}.{_TRUNK_PARTS[part]}.{leaf}"]
    return [*names, f"trunk.{i}.act.{leaf}"] if part == "prelu" else names


def official_trunk_name(name: str) -> str:
    """This suite's ``trunk.i.{body.k,act}.x`` -> the official ``layer.i.{conv1,prelu,conv2}.x`` (others kept)."""
    return _OUR_TRUNK.sub(lambda m: f"layer.{m.group(1)}.{_OFFICIAL_TRUNK_PARTS[m.group(2)]}.", name)


def strip_module(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Drop a ``module.`` prefix (a state dict saved from a DataParallel / DDP wrapper)."""
    return {k.removeprefix("module."): v for k, v in state.items()}


def read_state(path: Path, what: str = "a released checkpoint", source: str = "") -> dict:
    """A checkpoint file read without unpickling code (:func:`midms.weights.load_checkpoint`)."""
    state = load_checkpoint(path, what, source)
    if not isinstance(state, Mapping):
        raise UserError(f"{path} holds {type(state).__name__}, not a state dict (a released checkpoint).")
    return dict(state)


def tensors_only(state: Mapping, path: Path) -> dict[str, Tensor]:
    if not all(isinstance(v, Tensor) for v in state.values()):
        raise UserError(f"{path} is not a state dict of tensors (a released network file).")
    return dict(state)


def load_strict(
    module: nn.Module,
    state: Mapping[str, Tensor],
    source: str,
    fix: str,
    official: Callable[[str], str] | None = None,
) -> None:
    """``module.load_state_dict(state, strict=True)``, shapes checked first; one error naming every misfit.

    ``official`` maps this suite's names back to the official layout's: each misfit is then named as the file
    names it (or would) and as the model does."""

    def both(name: str) -> str:
        theirs = official(name) if official else name
        return name if theirs == name else f"{theirs} (here {name})"

    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    extra = sorted(set(state) - set(own))
    shapes = sorted(
        f"{both(k)}: file {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(state[k].shape) != tuple(own[k].shape)
    )
    if missing or extra or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing from the file ({', '.join(map(both, missing[:6]))})")
        if extra:
            parts.append(f"{len(extra)} tensor(s) the model does not have ({', '.join(map(both, extra[:6]))})")
        if shapes:
            parts.append(f"{len(shapes)} tensor(s) of another shape ({'; '.join(shapes[:4])})")
        raise UserError(f"{source} does not fit the model: {'; '.join(parts)}. {fix}")
    module.load_state_dict(state, strict=True)
