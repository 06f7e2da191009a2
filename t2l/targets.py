"""Finding the LoRA sites of any HF causal LM from its config alone (the model is built on the meta device)."""

import re

from t2l.config import Target, TargetSet
from t2l.errors import T2LError

_LAYER = re.compile(r"\.(\d+)\.")


def find_targets(model, target_modules) -> TargetSet:
    """Every nn.Linear whose last name part is in `target_modules`, with its layer index."""
    import torch

    found = []
    for name, mod in model.named_modules():
        short = name.rsplit(".", 1)[-1]
        if short not in target_modules:
            continue
        if not isinstance(mod, torch.nn.Linear):
            raise T2LError(f"{name} is a {type(mod).__name__}, not nn.Linear; t2l only adapts Linear layers")
        m = _LAYER.search(f".{name}.")
        if m is None:
            continue  # not inside a stack of layers (e.g. an lm_head); layer embeddings need an index
        found.append(Target(name, short, int(m.group(1)), mod.in_features, mod.out_features))
    missing = [t for t in target_modules if not any(f.module == t for f in found)]
    if missing:
        raise T2LError(
            f"the base model has no Linear modules named {', '.join(missing)}; "
            "pick target modules that exist (e.g. q_proj, v_proj)"
        )
    order = {t: i for i, t in enumerate(target_modules)}
    found.sort(key=lambda t: (order[t.module], t.layer))
    for module in target_modules:
        shapes = {(t.in_features, t.out_features) for t in found if t.module == module}
        if len(shapes) > 1:
            raise T2LError(
                f"{module} has different shapes across layers ({sorted(shapes)}); t2l needs one shape per module type"
            )
    return TargetSet(found)


def targets_from_config(config, target_modules) -> TargetSet:
    """LoRA sites of the causal LM described by a transformers config, without allocating its weights."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return find_targets(model, target_modules)
