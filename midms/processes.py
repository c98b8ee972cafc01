"""Whether a process that wrote a file (a running record, a temporary folder) is still alive."""

from __future__ import annotations

import os
import socket
from pathlib import Path


def alive(pid: int) -> bool:
    """Process ``pid`` of this host exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:  # a killed child that its parent has not reaped yet is a zombie: dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_gone(host: str, pid: int) -> bool:
    """Whether process ``pid`` of ``host`` has certainly ended: only knowable for this host."""
    return host == socket.gethostname() and not alive(pid)
