import pytest
import torch

from t2l.encoder import load_encoder


def test_plain_bert_matches_transformers(tiny_encoder_dir):
    texts = ["answer in upper case", "a much longer description of a task " * 3, "x"]
    plain = load_encoder(str(tiny_encoder_dir), backend="plain").encode(texts)
    ref = load_encoder(str(tiny_encoder_dir), backend="transformers").encode(texts)
    torch.testing.assert_close(plain.embeddings, ref.embeddings, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_pooling_and_truncation(tiny_encoder_dir, pooling):
    enc = load_encoder(str(tiny_encoder_dir), pooling=pooling)
    out = enc.encode(["short", "y" * 500])
    assert out.embeddings.shape == (2, 48) and out.truncated == [False, True]
    alone = enc.encode(["short"]).embeddings
    torch.testing.assert_close(out.embeddings[:1], alone, rtol=1e-4, atol=1e-5)  # padding does not leak in


@pytest.mark.integration
def test_plain_minilm_matches_transformers():
    texts = ["classify sentiment of movie reviews", "solve grade school math word problems"]
    plain = load_encoder(backend="plain").encode(texts).embeddings
    ref = load_encoder(backend="transformers").encode(texts).embeddings
    torch.testing.assert_close(plain, ref, rtol=1e-4, atol=1e-5)
