"""Packed rows (several examples end to end, per-token adapters) compute what one padded row per example does."""

import pytest
import torch

from conftest import char_tokenizer, tiny_model
from t2l.config import HypernetConfig
from t2l.train.data import Example, ExampleBatcher, pack
from t2l.train.sft import HypernetObjective, build_hypernet


def _objective(packing: bool, seed: int = 0):
    torch.manual_seed(seed)
    base = tiny_model()
    hn = build_hypernet(
        base,
        HypernetConfig(
            variant="M",
            rank=4,
            alpha=8,
            embed_dim=12,
            task_dim=8,
            pos_dim=4,
            hidden_dim=16,
            target_modules=("q_proj", "v_proj"),
        ),
    )
    for p in hn.heads.parameters():  # hyper-init makes B zero; give the adapters something to do
        torch.nn.init.normal_(p, std=0.05)
    texts = [
        ("hello there", "HI"),
        ("a much longer question about many things", "yes"),
        ("x", "a long answer here"),
        ("two", "2"),
        ("what is seven plus eight", "15"),
    ]
    examples = [Example(i, a, b) for i, (a, b) in enumerate(texts)]
    embs = [torch.randn(1, 12) for _ in texts]
    return HypernetObjective(hn, base, char_tokenizer(), examples, embs, max_length=64, packing=packing)


def test_pack_puts_examples_end_to_end_with_a_block_diagonal_causal_mask():
    rows = [([1, 2, 3], [-100, 2, 3]), ([4, 5], [-100, 5]), ([6, 7, 8, 9, 10], [-100, -100, 8, 9, 10]), ([11], [11])]
    p = pack(rows, width=8, pad_id=0)  # longest first into the emptier row: [2, 3] and [0, 1], one pad
    assert p.ids.shape == (2, 6) and p.tokens == 11
    assert p.route.tolist() == [[2] * 5 + [3], [0, 0, 0, 1, 1, -1]]
    assert p.positions[1].tolist() == [0, 1, 2, 0, 1, 0]
    m = p.mask[1, 0]
    assert m[4, 3] and m[2, 0] and not m[3, 2] and not m[2, 3]  # its own past only, never the other example
    assert (p.labels[1, [0, 3]] == -100).all() and p.labels[0, 5] == -100  # no target at an example's start
    assert not p.mask[1, 0, 5, 4] and p.mask[1, 0, 5, 5] and not p.mask[1, 0, 4, 5]  # padding sees only itself
    with pytest.raises(ValueError, match="does not fit"):
        pack(rows, width=4, pad_id=0)


def test_packed_loss_and_gradients_match_padded():
    padded, packed = _objective(False), _objective(True)
    packed.module.load_state_dict(padded.module.state_dict())
    rows, descs = [0, 1, 2, 3, 4, 1], [0] * 6
    results = []
    for obj in (padded, packed):
        obj.module.train()
        loss, labelled, tokens = obj.loss_sum(obj.module, rows, descs)
        loss.backward()
        results.append((loss.item(), labelled, tokens, [p.grad.clone() for p in obj.module.parameters()]))
    (l1, n1, t1, g1), (l2, n2, t2, g2) = results
    assert n1 == n2 and t1 == t2
    assert l2 == pytest.approx(l1, rel=1e-5)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * float(a.abs().max()))
    assert (
        ExampleBatcher(char_tokenizer(), padded.examples, 64).pack(rows).ids.numel()
        < padded.batcher.batch(rows)[0].numel()
    )  # and it computes fewer positions


def test_packed_lora_loss_and_gradients_match_padded():
    """mt-lora and lora pack too: one adapter for every token, so only the mask and positions change."""
    from t2l.train.lora import LoraObjective, build_lora

    texts = [("hello there", "HI"), ("a much longer question", "yes"), ("x", "a long answer"), ("two", "2")]
    examples = [Example(i, a, b) for i, (a, b) in enumerate(texts)]
    results = []
    for packing in (False, True):
        torch.manual_seed(0)
        model = build_lora(tiny_model(), 4, 8.0, 0.0, ["q_proj", "v_proj"])
        for name, p in model.named_parameters():
            if "lora_B" in name:  # PEFT starts B at zero; give the adapter something to do
                torch.nn.init.normal_(p, std=0.05)
        obj = LoraObjective(model, char_tokenizer(), examples, max_length=64, packing=packing)
        loss, labelled, tokens = obj.loss_sum(model, [0, 1, 2, 3, 1], [0] * 5)
        loss.backward()
        results.append((loss.item(), labelled, tokens, [p.grad.clone() for p in model.parameters() if p.requires_grad]))
    (l1, n1, t1, g1), (l2, n2, t2, g2) = results
    assert n1 == n2 and t1 == t2 and len(g1) == len(g2) > 0
    assert l2 == pytest.approx(l1, rel=1e-5)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-3 * float(a.abs().max()))
