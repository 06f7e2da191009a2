"""Which device a process computes on; training and evaluation both ask."""

import os


def resolve_device(setting: str) -> str:
    """`auto`: this process's GPU when there is one, else the CPU."""
    import torch

    from t2l.errors import T2LError

    if setting != "auto":
        try:
            kind = torch.device(setting)
        except RuntimeError:
            raise T2LError(f"unknown device {setting!r}: use auto, cpu, cuda or cuda:N") from None
        if kind.type == "cuda" and not torch.cuda.is_available():
            raise T2LError(
                f"--device {setting}: this machine (or this torch build) has no CUDA GPU; use --device cpu or auto"
            ) from None
        if kind.type == "cuda" and kind.index is not None and kind.index >= torch.cuda.device_count():
            raise T2LError(
                f"--device {setting}: there are only {torch.cuda.device_count()} GPUs (cuda:0 to "
                f"cuda:{torch.cuda.device_count() - 1})"
            )
        return setting
    # under torchrun each process takes the GPU of its local rank
    return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
