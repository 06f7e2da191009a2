"""A causal LM's head, run only on the hidden states that need logits (training loss, eval scoring)."""

import torch


def head_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    """fp32 logits of `hidden` [..., H], with the final soft-capping some models (Gemma 2) apply."""
    logits = model.get_output_embeddings()(hidden).float()
    cap = getattr(model.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits
