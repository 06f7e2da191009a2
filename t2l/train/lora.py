"""Plain LoRA training through PEFT: one task (the paper's per-task "oracle") or all tasks (multi-task LoRA)."""

from t2l.train.data import Example, ExampleBatcher
from t2l.train.loop import token_loss_sum


def build_lora(base_model, rank: int, alpha: float, dropout: float, target_modules):
    import warnings

    from peft import LoraConfig, get_peft_model

    # peft annotates lora_alpha as int, but it is only ever divided by r: a float alpha is what it was given
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,  # type: ignore[arg-type]
        lora_dropout=dropout,
        target_modules=list(target_modules),
        task_type="CAUSAL_LM",
    )
    with warnings.catch_warnings():  # peft reads transformers' deprecated alias; the warning is theirs, not the user's
        warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
        return get_peft_model(base_model, config)


class LoraObjective:
    def __init__(self, peft_model, tokenizer, examples: list[Example], max_length: int, packing: bool = False):
        self.module, self.packing = peft_model, packing
        self.batcher = ExampleBatcher(tokenizer, examples, max_length)

    def loss_sum(self, module, rows: list[int], descs: list[int], shots: list[list[int]] | None = None):
        # the full forward through `module` (not the decoder-only causal_lm_loss_sum path sft uses), because under
        # torchrun `module` is the DDP wrapper and its gradient sync hooks in on that forward
        device = next(self.module.parameters()).device
        if self.packing:  # one adapter for every token: packed rows need only their block-diagonal mask
            p = self.batcher.pack(rows)
            logits = module(
                input_ids=p.ids.to(device), attention_mask=p.mask.to(device), position_ids=p.positions.to(device)
            ).logits
            return (*token_loss_sum(logits, p.labels.to(device)), p.tokens)
        ids, mask, labels = (t.to(device) for t in self.batcher.batch(rows))
        return (*token_loss_sum(module(input_ids=ids, attention_mask=mask).logits, labels), int(mask.sum()))

    def weights(self) -> dict:
        from peft import get_peft_model_state_dict

        return get_peft_model_state_dict(self.module)

    def load_weights(self, state: dict) -> None:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(self.module, state)

    def close(self) -> None:
        pass
