"""qr_toy and the embedded tiny reasoning model: the generator, the task, the shipped weights."""

from __future__ import annotations

import random
import zlib

import pytest

from lm_eval_tasks.qr_toy import utils
from qr_adapters.toy_model import TOY_MODEL_DIR


def test_problems_are_deterministic_and_distinct():
    first = utils.problems(7, 200, "train")
    assert first == utils.problems(7, 200, "train")
    assert first != utils.problems(8, 200, "train")
    assert len({(p["a"], p["b"]) for p in first}) == 200
    for p in first:
        assert 100 <= p["a"] <= 999 and 100 <= p["b"] <= 999
        assert p["answer"] == str(p["a"] + p["b"]) and p["problem"] == f"What is {p['a']} + {p['b']}?"


def test_train_and_test_never_share_a_problem_nor_its_commuted_form():
    test = {frozenset((p["a"], p["b"])) for p in utils.problems(utils.TEST_SEED, 1000, "test")}
    for seed in (0, 1, 2):
        train = {frozenset((p["a"], p["b"])) for p in utils.problems(seed, 20000, "train")}
        assert not train & test
    assert all(utils.split_of(a, b) == utils.split_of(b, a) for a, b in [(123, 456), (999, 100), (500, 500)])
    share = sum(utils.split_of(a, b) == "test" for a in range(100, 1000, 7) for b in range(100, 1000, 11)) / (129 * 82)
    assert 0.08 < share < 0.12
    with pytest.raises(ValueError, match="split"):
        utils.problems(0, 1, "dev")


def test_asking_for_more_problems_than_a_split_holds_fails_at_once():
    """(Rejection sampling would otherwise draw forever.) The sizes, counted independently."""
    pairs = [(a, b) for a in range(100, 1000) for b in range(100, 1000)]
    test = sum(zlib.crc32(f"{min(p)}+{max(p)}".encode()) % 10 == 0 for p in pairs)
    assert (utils.split_size("test"), utils.split_size("train")) == (test, len(pairs) - test)
    for n in (0, test + 1):
        with pytest.raises(ValueError, match=f"cannot draw {n} distinct test problems: must be between 1 and {test}"):
            utils.problems(0, n, "test")


def test_solution_works_the_columns_checks_and_answers():
    text = utils.solution({"a": 964, "b": 494})
    assert text == (
        "Ones: 4+4=8, carry 0.\n"
        "Tens: 6+9+0=15, carry 1.\n"
        "Hundreds: 9+4+1=14.\n"
        "So the sum is \\boxed{1458}.\n"
        "Check: 494+964. 4+4=8 ok, 9+6+0=15 ok, 4+9+1=14 ok. Correct.\n"
        "</think>\n\nThe answer is \\boxed{1458}."
    )
    slipped = utils.solution({"a": 847, "b": 586}, slips=[(1, 2)])
    reasoning, answer = slipped.split("</think>")
    assert "Tens: 4+8+1=15, carry 1.\nHundreds: 8+5+1=14.\nSo the sum is \\boxed{1453}." in reasoning
    assert "Check: 586+847. 6+7=13 ok, 8+4+1=13 no. Wrong, let me redo the sum.\nOnes:" in reasoning  # stops at the first no
    assert reasoning.endswith("So the sum is \\boxed{1433}.\nCheck: 586+847. 6+7=13 ok, 8+4+1=13 ok, 5+8+1=14 ok. Correct.\n")
    assert answer == "\n\nThe answer is \\boxed{1433}."
    # a slip carries on: the ones off by -1 change the tens' carry, and the check sees both
    carried = utils.solution({"a": 105, "b": 105}, slips=[(0, 1)])
    assert "Ones: 5+5=11, carry 1.\nTens: 0+0+1=1, carry 0." in carried and "5+5=10 no. Wrong" in carried
    # a slip that leaves the sum unchanged is no slip
    assert utils.solution({"a": 100, "b": 100}, slips=[(0, -2)]) == utils.solution({"a": 100, "b": 100})
    rng = random.Random(0)
    texts = [utils.training_solution(p, rng, 0.4) for p in utils.problems(0, 1000, "train")]
    assert 0.35 < sum("Wrong" in t for t in texts) / len(texts) < 0.45
    assert max(t.count("Wrong") for t in texts) == 3


def test_the_task_reads_the_generator_through_lm_eval():
    from lm_eval.tasks import TaskManager

    from lm_eval_tasks import TASKS_DIR

    manager = TaskManager(include_defaults=False, include_path=str(TASKS_DIR), metadata={"toy_n": 12, "toy_seed": 3})
    task = manager.load(["qr_toy"])["tasks"]["qr_toy"]
    docs = list(task.test_docs())
    assert docs == utils.problems(3, 12, "test")
    assert task.doc_to_text(docs[0]) == utils.doc_to_text(docs[0])
    assert task.doc_to_target(docs[0]) == docs[0]["answer"]
    assert task.config.generation_kwargs == {"until": [], "max_gen_toks": 512, "do_sample": False}


def test_the_shipped_model_is_small_and_opens_its_reasoning():
    from transformers import AutoConfig, AutoTokenizer

    files = {p.name: p.stat().st_size for p in TOY_MODEL_DIR.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json"} <= set(files)
    assert sum(files.values()) <= 10 * 2**20
    assert AutoConfig.from_pretrained(TOY_MODEL_DIR).model_type == "llama"
    tokenizer = AutoTokenizer.from_pretrained(TOY_MODEL_DIR)
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<think>\n")
    assert len(tokenizer("</think>", add_special_tokens=False).input_ids) == 1
    assert tokenizer.tokenize("Tens: 6+19") == ["Tens", ":", "Ġ6", "+", "1", "9"]


def test_the_shipped_model_solves_held_out_problems():
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qr_adapters.toy_model.training import accuracy

    model = AutoModelForCausalLM.from_pretrained(TOY_MODEL_DIR, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(TOY_MODEL_DIR)
    held_out = utils.problems(utils.TEST_SEED + 1, 30, "test")
    assert accuracy(model, tokenizer, held_out, max_new_tokens=256) >= 0.9


def test_training_is_reproducible_from_its_seed():
    from torch import equal

    from qr_adapters.toy_model.training import TrainConfig, train

    config = TrainConfig(steps=3, warmup=1, batch_size=4, micro_batch=2, train_problems=50)
    quiet = lambda text: None  # noqa: E731
    (first, tokenizer), (second, again) = train(config, quiet), train(config, quiet)
    assert tokenizer.get_vocab() == again.get_vocab()
    weights, other = first.state_dict(), second.state_dict()
    assert all(equal(weights[name], other[name]) for name in weights)
    (third, _) = train(TrainConfig(**{**config.__dict__, "seed": 1}), quiet)
    assert not all(equal(weights[name], third.state_dict()[name]) for name in weights)
