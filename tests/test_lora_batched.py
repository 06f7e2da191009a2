import copy

import torch
from conftest import tiny_model

from t2l.lora_batched import BatchedLoRA
from t2l.targets import find_targets


def test_batched_lora_matches_peft_per_example():
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict

    base = tiny_model()
    targets = find_targets(base, ("q_proj", "v_proj"))
    rank, alpha, n = 4, 8.0, 3
    torch.manual_seed(1)
    weights = {
        m: (
            torch.randn(n, 2, rank, targets.of(m)[0].in_features),
            torch.randn(n, 2, targets.of(m)[0].out_features, rank),
        )
        for m in targets.modules
    }
    ids = torch.randint(4, 90, (n, 7))

    lora = BatchedLoRA(base, targets, alpha / rank)
    with torch.no_grad(), lora.use(weights):
        batched = base(input_ids=ids).logits
    with torch.no_grad():
        plain = base(input_ids=ids).logits  # the hooks add nothing outside `use`
    lora.remove()

    peft_model = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=rank, lora_alpha=alpha, target_modules=["q_proj", "v_proj"])
    )
    for i in range(n):
        state = {}
        for m in targets.modules:
            for pos, t in enumerate(targets.of(m)):
                state[t.peft_key("A")], state[t.peft_key("B")] = weights[m][0][i, pos], weights[m][1][i, pos]
        set_peft_model_state_dict(peft_model, state)
        with torch.no_grad():
            expected = peft_model(input_ids=ids[i : i + 1]).logits
        torch.testing.assert_close(batched[i : i + 1], expected, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(batched, plain)
