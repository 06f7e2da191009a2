"""How the next token is picked and when generation stops: the settings of one generation, without torch, so the
CLI's options can read their defaults from it (`t2l run`, `t2l chat`) before any model loads."""

from dataclasses import dataclass

from t2l.errors import T2LError


@dataclass(frozen=True)
class Sampling:
    """How the next token is picked and when generation stops."""

    max_new_tokens: int = 256
    temperature: float = 0.7  # 0: greedy (always the likeliest token)
    top_p: float = 1.0  # nucleus sampling: draw only from the likeliest tokens holding this much probability
    seed: int | None = None  # the same seed, prompt and adapter give the same answer; None: a fresh draw
    stop: tuple[str, ...] = ()  # the answer ends before the first of these strings
    frequency_penalty: float = 0.0  # subtracted from a token's logit once per time it was generated already
    presence_penalty: float = 0.0  # subtracted from a token's logit once it was generated at all
    logit_bias: tuple[tuple[int, float], ...] = ()  # (token id, added to its logit)
    logprobs: int | None = None  # record each token's log-probability and this many alternatives (None: not at all)

    def check(self) -> "Sampling":
        if self.max_new_tokens < 1:
            raise T2LError(f"max new tokens must be 1 or more, not {self.max_new_tokens}")
        if not 0 <= self.temperature <= 2:
            raise T2LError(f"temperature must be between 0 and 2, not {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise T2LError(f"top_p must be above 0 and at most 1, not {self.top_p}")
        for name in ("frequency_penalty", "presence_penalty"):
            if not -2 <= getattr(self, name) <= 2:
                raise T2LError(f"{name} must be between -2 and 2, not {getattr(self, name)}")
        if self.logprobs is not None and not 0 <= self.logprobs <= 20:
            raise T2LError(f"top_logprobs must be between 0 and 20, not {self.logprobs}")
        return self
