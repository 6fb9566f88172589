"""Child processes that end with their parent, so a `kill -9` leaves none training or holding a GPU.

Used by the search's evaluation workers and by the ranks of a torchrun launch: torchrun starts
every rank in a session of its own, so a kill of the agent (or of its process group) would
otherwise leave the ranks running on, orphaned, writing the checkpoints a rerun writes too.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time


def die_with_parent(parent_pid: int) -> None:
    """End this process when `parent_pid` ends (kill -9 included).

    Linux: the kernel's parent-death signal (SIGKILL, no polling); elsewhere, and as a second
    guard, a daemon thread that polls the parent once a second.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: the kernel kills us when the parent dies
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="lmnas-parent-watch", daemon=True).start()
