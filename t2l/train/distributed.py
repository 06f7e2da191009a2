"""Joining the process group that `torchrun` (or `accelerate launch`) describes in the environment."""

import os


def init_from_env() -> bool:
    """Init torch.distributed when WORLD_SIZE > 1: gloo on CPU, nccl on GPU. True if this call did it."""
    import torch
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or dist.is_initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl")
    else:
        dist.init_process_group("gloo")
    return True


def rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def same_on_all_ranks(value):
    """Rank 0's value, on every process (e.g. a run folder named after rank 0's clock)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
