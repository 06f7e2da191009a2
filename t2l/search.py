"""Finding adapters by what they do: the description encoder's cosine similarity between a query and descriptions."""

from functools import lru_cache

from t2l.encoder import DEFAULT_ENCODER, load_encoder


@lru_cache(maxsize=2)
def _encoder(spec: str):
    """The encoder, loaded once per process: a server answers search after search with it."""
    return load_encoder(spec)


def similarities(query: str, descriptions: list[str], encoder: str = DEFAULT_ENCODER) -> list[float]:
    """Cosine similarity of `query` to each description, in order."""
    import torch.nn.functional as F

    if not descriptions:
        return []
    emb = F.normalize(_encoder(encoder).encode([query, *descriptions]).embeddings.float(), dim=-1)
    return (emb[1:] @ emb[0]).tolist()


def substring_hits(query: str, texts: list[str]) -> list[bool]:
    """Case-insensitive containment of every word of `query` (the `--exact` search, no model needed)."""
    words = query.lower().split()
    return [all(w in t.lower() for w in words) for t in texts]
