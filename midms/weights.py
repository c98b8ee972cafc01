"""Weight files checked before they are loaded: a file with a published SHA-256 must have it.

Which hashes are known:

- files named by torch.hub's convention, ``<name>-<hex>.<ext>``: the hex digits are the start of the file's
  SHA-256, which ``torch.hub.load_state_dict_from_url(check_hash=True)`` checks on download. torchvision's
  ``vgg19-dcbb9e9d.pth`` (VGG19), ``alexnet-owt-7be5be79.pth`` and ``vgg16-397923af.pth`` (the LPIPS trunks) and
  pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (FID, ``legacy_pytorch``) are named this way, and
  a copy put into the cache by hand is held to the same rule;
- :data:`KNOWN_SHA256`: full hashes by file name, where a source publishes one (it takes precedence).

Files without a published hash (clean-fid's ``inception-2015-12-05.pt``, CoCosNet's ``vgg19_conv.pth``, the
CompVis LDM checkpoints) are loaded as they are; their SHA-256 goes into the run's protocol either way, so
two runs can be checked to have used the same file. Hashes are memoised per path, size and modification time.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from midms.errors import UserError

#: full SHA-256 by file name, from a published source; see the module docstring
KNOWN_SHA256: dict[str, str] = {}
#: torch.hub's rule (``torch.hub.HASH_REGEX``): the hex digits after the last '-' before the first '.'
_HUB_HASH = re.compile(r"-([a-f0-9]{8,64})\.")


class WeightsMismatch(UserError):
    """A weight file whose SHA-256 is not the published one: a truncated download, another file renamed."""


@lru_cache(maxsize=32)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file (memoised per path, size and modification time)."""
    st = Path(path).stat()
    return _sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def published_sha256(name: str) -> str | None:
    """The SHA-256 (or its published prefix) a file of this name must have; None when none is known."""
    if name in KNOWN_SHA256:
        return KNOWN_SHA256[name]
    match = _HUB_HASH.search(name)
    return match.group(1) if match else None


def verified_sha256(path: str | Path, source: str = "") -> str:
    """The file's SHA-256, after checking it against the published one; :class:`WeightsMismatch` if it differs.

    ``source`` (a URL or a hint) is named in the error as where to get the right file."""
    path = Path(path)
    actual = file_sha256(path)
    expected = published_sha256(path.name)
    if expected is not None and not actual.startswith(expected):
        where = f" from {source}" if source else ""
        raise WeightsMismatch(
            f"{path} is not the published file: its SHA-256 is {actual}, the published one "
            f"{'starts with ' if len(expected) < 64 else ''}{expected}. It may be a truncated download or another "
            f"file under this name. Fix: delete it and download it again{where}."
        )
    return actual


def _what_the_file_is(path: Path) -> str:
    """A guess at what a file that torch cannot read is, from its first bytes (for the error message)."""
    with open(path, "rb") as f:
        head = f.read(512)
    if not head:
        return "it is empty (an interrupted download?)"
    if head.lstrip()[:1] == b"<":
        return "it is an HTML or XML page (a download link that saved the web page instead of the file?)"
    if head.startswith(b"PK") and not zipfile.is_zipfile(path):
        return "it is a truncated zip archive (an interrupted download or copy?)"
    return "its contents are not in PyTorch's format (a truncated download, or another kind of file?)"


def load_checkpoint(path: str | Path, what: str, source: str = "") -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one paragraph instead of torch's error.

    A file that holds Python objects other than tensors and plain containers is refused (nothing in a
    checkpoint is run); a file that is not a checkpoint at all is named as such, with a guess at what it is.
    ``what`` names the file's role (``"MIDMs' released checkpoint"``), ``source`` where to get it again."""
    path = Path(path)
    again = f" Download it again{f' from {source}' if source else ''} and replace {path}."
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if not found:  # the unpickler met bytes no pickle holds: not a checkpoint at all
            raise UserError(f"{path} ({what}) is not a PyTorch checkpoint: {_what_the_file_is(path)}.{again}") from None
        raise UserError(
            f"{path} ({what}) holds Python objects, not only tensors (it refers to {found.group(1)}); this suite "
            f"reads weight files without running code stored in them, so it cannot read this one. Use the file as "
            f"its authors released it (a state dict of tensors), or save only the tensors: "
            f"torch.save(model.state_dict(), path).{again}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path} ({what}) is not a PyTorch checkpoint: {_what_the_file_is(path)}.{again}") from e
