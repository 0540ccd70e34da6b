"""The control package's pure parts on hand-made ids: the rescue rule, stops, the answer's room,
the rescue itself with a scripted engine, the side-file records and their token counts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qr_adapters.control import (
    Batch,
    Engine,
    SideLog,
    Trace,
    answer_room,
    commit_text,
    may_rescue,
    plan_batch,
    rescue_batch,
    stop_ids,
    stop_lookback,
    through_stop,
    writes_answer,
)
from qr_adapters.model_args import RescueParams
from qr_metrics.measure import measure
from qr_metrics.rescue_choice import RescueChoice
from qr_metrics.segments import segment_token_counts
from qr_metrics.sidecar import SideRecord

# A hand-made vocabulary: one id per word; "<think>" and "</think>" are single ids.
WORDS = ["<pad>", "<think>", "</think>", "\n", "Wait,", "so", "x", "=", "4.", "\\boxed{4}", "The", "answer", "is"]
ID = {w: i for i, w in enumerate(WORDS)}
OPEN, CLOSE = ID["<think>"], ID["</think>"]
TEXTS = {"close_text": "\n</think>\n", "commit_template": "\\boxed{{{answer}}}"}  # a few words of WORDS


def encode(text: str) -> list[int]:
    return [ID[w] for w in text.replace("\n", " \n ").split(" ") if w]


def decode(ids: list[int]) -> str:
    return " ".join(WORDS[i] for i in ids)


# -- the rescue rule ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loop", "length", "closed", "ended", "expected"),
    [
        (True, 10, False, False, True),
        (False, 10, False, False, False),  # nothing to rescue
        (True, 9, False, False, False),  # before min_reasoning_tokens
        (True, 10, True, False, False),  # the reasoning closed
        (True, 10, False, True, False),  # it ended at eos / a stop sequence, or was stopped already
    ],
)
def test_may_rescue_one_row(loop, length, closed, ended, expected):
    assert bool(may_rescue(loop, length, 10, closed, ended)) is expected


def test_may_rescue_is_elementwise():
    loop = np.array([True, True, True, True, False])
    length = np.array([10, 3, 10, 10, 10])
    closed = np.array([False, False, True, False, False])
    ended = np.array([False, False, False, True, False])
    assert may_rescue(loop, length, 5, closed, ended).tolist() == [True, False, False, False, False]
    assert may_rescue(loop, length, np.array([0, 0, 0, 0, 0]), False, False).tolist() == [True] * 4 + [False]


# -- stops ----------------------------------------------------------------------------------------


def test_stop_ids_gathers_every_eos():
    assert stop_ids(2, [2, 7, 9]) == {2, 7, 9}
    assert stop_ids(2, 5) == {2, 5}
    assert stop_ids(None, None) == set()


def test_through_stop_finds_the_shortest_prefix_holding_a_stop():
    ids = encode("so x = 4. The answer is")
    assert through_stop(ids, ["4. The"], decode) == 5  # through "The"
    assert through_stop(ids, ["= 4."], decode) == 4
    assert through_stop(ids, ["nowhere"], decode) is None
    assert through_stop(ids, [], decode) is None


def test_stop_lookback_is_the_longest_stop_and_two():
    assert stop_lookback(["so x =", "is"], encode) == 5
    assert stop_lookback([], encode) == 2


# -- the answer's room and the committed text -------------------------------------------------------


def test_answer_room():
    assert answer_room(prompt_length=10, completion_length=50, close_length=3, answer_tokens=8, max_length=None) == 50
    assert answer_room(prompt_length=10, completion_length=50, close_length=3, answer_tokens=8, max_length=64) == 43
    assert answer_room(prompt_length=60, completion_length=50, close_length=3, answer_tokens=8, max_length=64) == 0


def test_writes_answer_and_commit_text():
    assert writes_answer(RescueChoice("commit"), "loop")
    assert not writes_answer(RescueChoice("commit", "4"), "loop")
    assert not writes_answer(RescueChoice("fallback"), "loop")  # the reference goes on reasoning
    assert writes_answer(RescueChoice("fallback"), "length")
    params = RescueParams(**TEXTS)
    assert commit_text(params, None) == "\n</think>\n"
    assert encode(commit_text(params, "4")) == [ID["\n"], CLOSE, ID["\n"], ID["\\boxed{4}"]]


# -- token counts of the reasoning and the answer ---------------------------------------------------


@pytest.mark.parametrize(
    ("ids", "opened", "expected"),
    [
        ([5, 6, CLOSE, 10, 11], True, (2, 2)),  # end-only form: the prompt opened
        ([5, CLOSE, 6, CLOSE, 10], True, (3, 1)),  # the last closing tag cuts
        ([5, 6, 7], True, (3, 0)),  # unclosed: all reasoning
        ([OPEN, 5, 6, CLOSE, 10], False, (2, 1)),  # the model opened: its tag is not reasoning
        ([OPEN, 5, 6, CLOSE, 10], True, (2, 1)),
        ([10, OPEN, 5, CLOSE, 11], False, (1, 1)),  # text before the opening tag is neither
        ([OPEN, 5, 6], False, (2, 0)),  # opened by the model, never closed
        ([10, 11, 12], False, (0, 3)),  # never opened: all answer
        ([], True, (0, 0)),
    ],
)
def test_segment_token_counts(ids, opened, expected):
    assert segment_token_counts(ids, [OPEN], [CLOSE], opened) == expected


def test_segment_token_counts_need_single_id_tags():
    assert segment_token_counts([1, 2, 3], [OPEN], [1, 2], True) == (None, None)
    assert segment_token_counts([1, 2, 3], [1, 2], [CLOSE], True) == (None, None)


# -- the rescue, with a scripted engine ------------------------------------------------------------


class Scripted:
    """An engine whose models write given ids; it records each call."""

    def __init__(self, lowbit: list[int], reference: list[int], max_length: int | None = None):
        self.script = {"lowbit": lowbit, "reference": reference}
        self.calls: list[tuple[str, list[list[int]], int]] = []
        self.engine = Engine(decode=decode, encode=encode, generate=self.generate, clock=lambda: 0.0,
                             max_length=max_length)

    def generate(self, model, prefixes, budget, phase):
        self.calls.append((model, prefixes, budget))
        return [self.script[model][:budget] for _ in prefixes], [len(self.script[model]) <= budget] * len(prefixes)


def batch_of(rows: list[Trace], budget: int = 12) -> Batch:
    return Batch(rows, ["prompt"] * len(rows), [("qr_math", i, 0) for i in range(len(rows))], budget)


def looping(ids: list[int], onset: int, period: int = 2) -> Trace:
    row = Trace(prompt=[ID["<pad>"]], opened=True, task="qr_math")
    row.low_bit_ended(ids, ended=False, loop=(onset, period), stopped_at_loop=True)
    return row


def test_commit_cuts_at_the_onset_and_appends_the_answer():
    ids = encode("so x = 4. \\boxed{4} Wait, so Wait, so Wait, so")
    row = looping(ids, onset=5)
    batch = batch_of([row])
    params = RescueParams(rescue="commit", min_reasoning_tokens=0, **TEXTS)
    rescue_batch(batch, params, Scripted([], []).engine)
    assert row.ids == ids[:5] + encode(commit_text(params, "4"))
    (event,) = row.events
    assert (event.kind, event.trigger, event.position, event.period, event.answer, event.tokens_cut) == (
        "commit", "loop", 5, 2, "4", len(ids) - 5)
    assert (row.finish, row.final, row.lowbit) == ("loop", "stop", 5)


def test_min_reasoning_tokens_holds_the_rescue_back():
    row = looping(encode("Wait, so Wait, so Wait, so"), onset=0)
    rescue_batch(batch_of([row]), RescueParams(rescue="commit", min_reasoning_tokens=7), Scripted([], []).engine)
    assert row.events == [] and row.ids == encode("Wait, so Wait, so Wait, so")


def test_the_budget_in_open_reasoning_is_rescued_and_a_closed_one_is_not():
    params = RescueParams(rescue="fallback", reference="ref", min_reasoning_tokens=0, answer_tokens=2, **TEXTS)
    unclosed = Trace(prompt=[0], opened=True, task="qr_math")
    unclosed.low_bit_ended(encode("so x = 4."), ended=False, loop=None, stopped_at_loop=False)
    closed = Trace(prompt=[0], opened=True, task="qr_math")
    closed.low_bit_ended(encode("so </think> x = 4."), ended=False, loop=None, stopped_at_loop=False)
    stopped = Trace(prompt=[0], opened=True, task="qr_math")
    stopped.low_bit_ended(encode("so x"), ended=True, loop=None, stopped_at_loop=False)
    engine = Scripted([], encode("The answer is 4. x")).engine
    rescue_batch(batch_of([unclosed, closed, stopped], budget=4), params, engine)
    assert [e.trigger for e in unclosed.events] == ["length"] and closed.events == [] and stopped.events == []
    assert unclosed.ids == encode("so x = 4. \n </think> \n The answer")  # the reference answers within answer_tokens
    assert (unclosed.reference, unclosed.final) == (2, "length")


def test_the_cut_makes_room_for_the_close_and_the_answer():
    ids = encode("so x = 4. Wait, so Wait, so Wait, so")
    row = looping(ids, onset=4)
    params = RescueParams(rescue="commit", min_reasoning_tokens=0, answer_tokens=2, **TEXTS)
    scripted = Scripted(encode("The answer"), [], max_length=1 + 3 + 2 + 3)  # prompt 1, close 3, answer 2
    rescue_batch(batch_of([row]), params, scripted.engine)
    assert row.events[0].position == 3  # not the onset (4): no room after it
    assert row.ids == ids[:3] + encode("\n</think>\n") + encode("The answer")


def test_a_plan_that_used_the_budget_is_never_rescued():
    row = Trace(prompt=[0], opened=True, task="qr_math")
    batch = batch_of([row], budget=3)
    scripted = Scripted([], encode("Wait, so Wait, so"))  # more than the budget
    params = RescueParams(rescue="commit", plan_tokens=5, reference="ref", min_reasoning_tokens=0)
    plan_batch(batch, params, scripted.engine)
    assert (row.ids, row.plan, row.done, row.finish) == (encode("Wait, so Wait,"), 3, True, "length")
    rescue_batch(batch, params, scripted.engine)
    assert row.events == []


# -- side-file records ---------------------------------------------------------------------------


def test_records_count_reasoning_and_answer_and_validate():
    rows = [Trace(prompt=[0], opened=True, task="qr_math"), Trace(prompt=[0], opened=False, task="qr_math")]
    rows[0].low_bit_ended(encode("so x </think> The answer"), ended=True, loop=None, stopped_at_loop=False)
    rows[1].low_bit_ended(encode("<think> so </think> The"), ended=True, loop=None, stopped_at_loop=False)
    batch = batch_of(rows)
    batch.timing("generate", "lowbit", 0.5, 5)
    records = [SideRecord.from_json(json.loads(json.dumps(r))) for r in batch.records(encode)]
    assert [(r.completion_tokens, r.reasoning_tokens, r.answer_tokens) for r in records] == [(5, 2, 2), (4, 1, 1)]
    assert records[0].finish_reason == records[0].final_finish_reason == "stop"
    assert records[0].decode_s_per_token == {"lowbit": 0.1} and records[0].wall_s == {"generate": 0.5}


def test_old_side_records_have_no_answer_tokens():
    rows = [Trace(prompt=[0], opened=True)]
    record = batch_of(rows).records(encode)[0]
    del record["answer_tokens"]
    assert SideRecord.from_json(record).answer_tokens is None
    with pytest.raises(ValueError, match="^answer_tokens: must be null or an integer"):
        SideRecord.from_json({**record, "answer_tokens": -1})


def test_side_log_pairs_prompts_with_requests_and_writes_atomically(tmp_path):
    class Request:
        def __init__(self, doc_id, prompt):
            self.task_name, self.doc_id, self.args = "qr_math", doc_id, (prompt, {})

    log = SideLog(str(tmp_path / "side.jsonl"))
    log.expect([Request(0, "a"), Request(0, "a"), Request(1, "b")], key_of=lambda r: r.args[0])
    assert log.take("b") == (("qr_math", 1, 0), "b")
    assert [log.take("a"), log.take("a")] == [(("qr_math", 0, 0), "a"), (("qr_math", 0, 1), "a")]
    log.records.append({"x": 1})
    log.write()
    assert (tmp_path / "side.jsonl").read_text() == '{"x": 1}\n'
    assert not SideLog("").recording


# -- the same counts as the measurement, on a real tokenizer ---------------------------------------


@pytest.mark.parametrize(
    ("prompt", "completion"),
    [
        ("<|Assistant|><think>\n", "Let me think step by step. 6 + 1 = 7.\n</think>\n\nSo the answer is \\boxed{7}."),
        ("<|Assistant|><think>\n", "Wait, let me double-check that calculation. Wait, let me double-check"),
        ("<|Assistant|>", "<think>\nFirst, I need to find x.\n</think>\n\nThe answer is \\boxed{4}."),
        ("<|Assistant|><think>\n", "<think>\nHmm.</think>x</think>\n\nThe answer is \\boxed{4}."),
        ("<|Assistant|>", "Okay. <think>So x = 4.</think> The answer is 4."),
        ("<|Assistant|>", "<think>\nFirst, I need to find x. Let me"),
        ("<|Assistant|>", "The answer is \\boxed{4}."),
    ],
    ids=["closed", "unclosed", "model-opened", "opened-twice", "text-before-open", "model-opened-unclosed",
         "not-opened"],
)
def test_side_record_counts_are_the_measured_counts(tiny_model_dir, prompt, completion):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tok_encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    assert len(tok_encode("<think>")) == len(tok_encode("</think>")) == 1
    batch = Batch.start([prompt], [tok_encode(prompt)], [("qr_math", 0, 0)], 64, RescueParams())
    batch.rows[0].low_bit_ended(tok_encode(completion), ended=True, loop=None, stopped_at_loop=False)
    record = SideRecord.from_json(batch.records(tok_encode)[0])
    counts = measure(completion, tokenizer=str(tiny_model_dir), opened_by_prompt=batch.rows[0].opened).counts
    assert (record.reasoning_tokens, record.answer_tokens, record.completion_tokens) == (
        counts["reasoning_tokens"], counts["answer_tokens"], counts["completion_tokens"])
