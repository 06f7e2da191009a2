"""The engine's running batch on a tiny model: rows with different adapters, prompts, seeds and budgets, joining
while others generate, give token for token what each gets alone; rows that finish or are dropped leave without
disturbing the rest."""

import threading
import time

import pytest
import torch
from conftest import char_tokenizer, tiny_model

from t2l.chat import Engine, Sampling
from t2l.lora_batched import lora_weights
from t2l.targets import find_targets


def random_adapter(model, modules: list[str], rank: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for t in find_targets(model, modules).targets:
        tensors[t.peft_key("A")] = torch.randn(rank, t.in_features, generator=g) * 0.5
        tensors[t.peft_key("B")] = torch.randn(t.out_features, rank, generator=g) * 0.5
    return lora_weights(model, tensors, {"r": rank, "lora_alpha": 2 * rank}, f"random-{seed}")


@pytest.fixture(scope="module")
def engine():
    from t2l.locate import ModelRef

    model = tiny_model()
    return Engine(model, char_tokenizer(), ModelRef("tiny", "0" * 64), max_batch=8)


def requests(engine):
    """Eight answers over three adapters of different module sets and ranks and the base, greedy and sampled."""
    m = engine.model
    adapters = [
        None,
        random_adapter(m, ["q_proj", "v_proj"], 4, 1),
        random_adapter(m, ["o_proj"], 2, 2),
        random_adapter(m, ["q_proj", "down_proj"], 8, 3),
    ]
    prompts = [
        "hi",
        "tell me a story about a cat",
        "2+2=",
        "a much longer prompt than the others, by far, it is",
        "x",
        "what now?",
        "hello there",
        "abc abc abc",
    ]
    out = []
    for i, prompt in enumerate(prompts):
        sampling = Sampling(
            max_new_tokens=6 + 3 * i, temperature=0.0 if i % 2 else 1.0, seed=i, stop=("zz",) if i == 3 else ()
        )
        out.append((engine.tokenizer(prompt)["input_ids"], sampling, adapters[i % 4]))
    return out


def alone(engine, reqs):
    return [engine.generate(ids, s, a).run() for ids, s, a in reqs]


def test_answers_under_load_are_token_for_token_the_answers_alone(engine):
    reqs = requests(engine)
    single = alone(engine, reqs)
    gens = [engine.generate(ids, s, a) for ids, s, a in reqs]
    first = threading.Thread(target=gens[0].run)
    first.start()
    while not gens[0].token_ids:  # the others join a batch that is already generating
        time.sleep(0.001)
    threads = [threading.Thread(target=g.run) for g in gens[1:]]
    for t in threads:
        t.start()
    for t in [first, *threads]:
        t.join(60)
    assert [g.token_ids for g in gens] == [g.token_ids for g in single]
    assert [g.text for g in gens] == [g.text for g in single]
    assert [g.finish_reason for g in gens] == [g.finish_reason for g in single]
    assert engine.scheduler.stats.requests >= 16 and len(engine.scheduler.stats.first_token_s) >= 16


def test_a_small_batch_queues_the_rest_first_come_first_served(engine):
    reqs = requests(engine)[:5]
    single = alone(engine, reqs)
    engine.scheduler.max_batch = 2
    try:
        gens = [engine.generate(ids, s, a) for ids, s, a in reqs]
        threads = [threading.Thread(target=g.run) for g in gens]
        for t in threads:
            t.start()
            time.sleep(0.01)
        for t in threads:
            t.join(60)
    finally:
        engine.scheduler.max_batch = 8
    assert [g.token_ids for g in gens] == [g.token_ids for g in single]


def test_a_dropped_row_leaves_and_the_others_finish_as_alone(engine):
    reqs = [(ids, Sampling(40, 0.0), a) for ids, _, a in requests(engine)[:3]]
    single = alone(engine, reqs)
    gens = [engine.generate(ids, s, a) for ids, s, a in reqs]
    dropped = iter(gens[1])
    next(dropped)
    threads = [threading.Thread(target=g.run) for g in (gens[0], gens[2])]
    for t in threads:
        t.start()
    dropped.close()
    for t in threads:
        t.join(60)
    assert gens[1].finish_reason == "interrupted" and gens[1].completion_tokens < 40
    assert [gens[0].token_ids, gens[2].token_ids] == [single[0].token_ids, single[2].token_ids]


def test_penalties_and_bias_follow_openai_formulas():
    from t2l.scheduler import pick

    logits = torch.tensor([0.0, 1.0, 2.0, 3.0])
    s = Sampling(temperature=0, frequency_penalty=0.5, presence_penalty=1.0, logit_bias=((0, 2.5),), logprobs=2)
    record = []
    # token 3 came twice (3 - 2 x 0.5 - 1 = 1), token 2 once (2 - 0.5 - 1 = 0.5), token 0 is biased to 2.5
    assert pick(logits, s, torch.Generator(), [3, 2, 3], record) == 0
    adjusted = torch.log_softmax(torch.tensor([2.5, 1.0, 0.5, 1.0]), -1)
    assert record[0][0] == pytest.approx(float(adjusted[0]))
    assert [i for i, _ in record[0][1]] == [0, 1] or [i for i, _ in record[0][1]] == [0, 3]


def test_draining_stops_admitting_then_ends_what_still_runs():
    from t2l.errors import T2LError
    from t2l.locate import ModelRef

    engine = Engine(tiny_model(), char_tokenizer(), ModelRef("tiny", "0" * 64), max_batch=1)
    ids = engine.tokenizer("hi")["input_ids"]
    endless = Sampling(240, 1.0, seed=0, logit_bias=((2, -100.0),))  # the end token never comes: runs to 240
    running, queued = engine.generate(ids, endless), engine.generate(ids, endless)
    pieces = iter(running)
    next(pieces)
    waiter = threading.Thread(target=queued.run)
    waiter.start()
    while not engine.scheduler.waiting and not queued.done.is_set():
        time.sleep(0.001)
    engine.scheduler.drain(0.0)
    for _ in pieces:  # what was sampled before the drain still comes out, then the iteration ends
        pass
    waiter.join(10)
    assert queued.finish_reason == "interrupted" and queued.completion_tokens == 0  # never admitted
    assert running.finish_reason in ("interrupted", "length") and running.done.is_set()
    with pytest.raises(T2LError, match="shutting down"):
        engine.generate(ids, Sampling(4, 0)).run()
