"""Run the `t2l` command, but SIGKILL the process at a chosen point: the N-th call of a function.

    python tests/killed.py MODULE:QUALNAME N t2l-args...

The function is replaced by one that kills the process on its N-th call (earlier calls go through), so a test can
stop `t2l` exactly where a crash, an OOM kill or a power cut would hurt most.
"""

import functools
import importlib
import os
import signal
import sys


def arm(target: str, n: int) -> None:
    module_name, qualname = target.split(":")
    owner = importlib.import_module(module_name)
    *path, attr = qualname.split(".")
    for part in path:
        owner = getattr(owner, part)
    original = getattr(owner, attr)
    calls = [0]

    @functools.wraps(original)
    def fatal(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, attr, fatal)


if __name__ == "__main__":
    arm(sys.argv[1], int(sys.argv[2]))
    from t2l_cli.app import app

    app(sys.argv[3:], prog_name="t2l")
