import pytest
import torch
from conftest import tiny_config, tiny_model

from t2l.config import HypernetConfig
from t2l.hypernet import HyperLoRA
from t2l.targets import find_targets, targets_from_config


@pytest.mark.parametrize("arch", ["llama", "qwen2", "mistral", "gemma"])
@pytest.mark.parametrize("variant", ["L", "M", "S"])
def test_one_forward_emits_every_target_for_a_batch(arch, variant):
    targets = targets_from_config(tiny_config(arch, layers=3), ("q_proj", "v_proj", "o_proj"))
    hn = HyperLoRA(
        HypernetConfig(
            variant=variant,
            rank=4,
            embed_dim=16,
            task_dim=8,
            pos_dim=4,
            hidden_dim=16,
            target_modules=("q_proj", "v_proj", "o_proj"),
        ),
        targets,
    )
    out = hn(torch.randn(5, 16))
    assert list(out) == ["q_proj", "v_proj", "o_proj"]
    for module, (a, b) in out.items():
        t = targets.of(module)[0]
        assert a.shape == (5, 3, 4, t.in_features)
        assert b.shape == (5, 3, t.out_features, 4)


def test_targets_follow_the_base_config():
    targets = targets_from_config(tiny_config("llama"), ("q_proj", "v_proj"))
    v = targets.of("v_proj")[0]
    # 4 heads of 8 dims for queries, 2 kv heads of 8 dims for values
    assert (v.in_features, v.out_features) == (32, 16)
    assert [t.layer for t in targets.of("q_proj")] == [0, 1]
    assert targets.of("q_proj")[1].peft_key("A") == "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"


def test_unknown_target_module_is_a_clear_error():
    from t2l.errors import T2LError

    with pytest.raises(T2LError, match="no Linear modules named qkv"):
        find_targets(tiny_model(), ("qkv",))


def test_untrained_hypernet_emits_lora_init_and_batch_rows_are_independent():
    targets = targets_from_config(tiny_config(), ("q_proj",))
    hn = HyperLoRA(
        HypernetConfig(rank=4, embed_dim=16, task_dim=8, pos_dim=4, hidden_dim=16, target_modules=("q_proj",)), targets
    )
    a, b = hn(torch.randn(2, 16))["q_proj"]
    assert torch.count_nonzero(b) == 0 and torch.count_nonzero(a) > 0  # delta-W = B A = 0 at the start
    torch.nn.init.normal_(hn.heads["q_proj"].weight)
    emb = torch.randn(3, 16)
    a3, b3 = hn(emb)["q_proj"]
    a1, b1 = hn(emb[1:2])["q_proj"]
    torch.testing.assert_close(a3[1:2], a1)
    torch.testing.assert_close(b3[1:2], b1)
    assert not torch.allclose(b3[0], b3[2])


def test_config_rejects_bad_variant():
    with pytest.raises(ValueError, match="variant"):
        HypernetConfig(variant="XL")
