"""MATEBIT's released CelebA-HQ generator (``latest_net_G.pth``) loaded into
:class:`~baselines.matebit.network.MATEBITGenerator`.

The released models (a Drive folder linked from the README of https://github.com/AiArt-Gao/MATEBIT, saved as
``checkpoints/<name>/latest_net_G.pth``) are ``state_dict`` files of the official ``DynaSTGenerator``; the CelebA-HQ
edge model is the one of ``models/networks/generator_celebahqedge.py`` (the exemplar encoder and its embedding read
the exemplar with its semantics, and a feature memory). That module imports ``models.taming...VectorQuantizer2``,
which the repository does not contain (its issue #9), and never uses it; ``generator.py``, which ``--netG dynast``
selects, imports a ``DynamicSparseTransformerBlock`` it does not contain either. This suite needs neither. The
official loader falls back to a non-strict load on a misfit; here the load is strict.

The top-level names are the official ones; inside the blocks DynaST's renames apply (:mod:`baselines.dynast.released`:
SPADE's ``mlp_*``, residual ``model.K`` -> ``body.M`` and ``relu`` -> ``act``, the old spectral-norm hook), and the
encoders' and decoder's spectral-instance convolutions keep their ``N.0`` / ``N.0.0`` positions.
"""

from __future__ import annotations

from pathlib import Path

from midms.baselines.dynast.released import RELEASED_FILE, load_generator_file
from torch import nn

FIX = (
    "Check that the folder holds MATEBIT's released CelebA-HQ edge model (generator_celebahqedge.py) and that the run "
    "uses its settings (model.size=paper: ngf 64, max_multi 8, n_layers 3, pos_dim and prune_dim 16, 1024 memory "
    "slots; 256-pixel images; the 15 edge channels)."
)


def load_released(generator: nn.Module, folder: str | Path) -> dict[str, str]:
    """Load the released MATEBIT CelebA-HQ generator from ``folder`` strictly; returns ``{file name: SHA-256}``."""
    where = (
        "MATEBIT's released CelebA-HQ model (the checkpoint folder linked from the README of "
        f"https://github.com/AiArt-Gao/MATEBIT, its {RELEASED_FILE})"
    )
    return load_generator_file(generator, folder, FIX, where)
