"""Which device a process computes on; training and evaluation both ask."""

import os


def resolve_device(setting: str) -> str:
    """`auto`: this process's GPU when there is one, else the CPU."""
    import torch

    if setting != "auto":
        return setting
    # under torchrun each process takes the GPU of its local rank
    return f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else "cpu"
