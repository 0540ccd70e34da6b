"""``qr-completions``' own model arguments, refused in one line before any request is sent
(no server needed: the served tests are ``test_completions``)."""

from __future__ import annotations

import pytest

from qr_adapters.completions import QRCompletions
from qr_adapters.errors import ModelArgumentError
from qr_adapters.served import _free_port


@pytest.fixture
def nowhere() -> str:
    """A completions URL on a loopback port nothing listens on."""
    return f"http://127.0.0.1:{_free_port()}/v1/completions"


def make(tiny_model_dir, base_url, **args):
    return QRCompletions(base_url=base_url, model=str(tiny_model_dir), max_retries=1, **args)


@pytest.mark.parametrize("args, message", [
    ({"watch": "processor"}, "watch='processor' is invalid: must be one of auto, engine, chunks"),
    ({"chunk_tokens": 0}, "chunk_tokens=0 is invalid: must be an integer >= 1"),
    ({"rescue": "commit", "tokenizer_backend": "none"}, "tokenizer_backend=None is invalid with rescue"),
    ({"rescue": "commit", "watch": "engine"}, "watch='engine' is invalid: the server at base_url=.* is not vLLM >= 0.17"),
    ({"rescue": "sometimes"}, "rescue='sometimes' is invalid"),
])
def test_bad_arguments_are_one_line(tiny_model_dir, nowhere, args, message):
    with pytest.raises(ModelArgumentError, match=message):
        make(tiny_model_dir, nowhere, **args)


def test_a_reference_that_does_not_answer_fails_before_any_sample(tiny_model_dir, nowhere):
    with pytest.raises(ModelArgumentError, match=r"reference='ref' at reference_base_url=.* is invalid: .* did not answer "
                                                 r"after 1 tries"):
        make(tiny_model_dir, nowhere, rescue="fallback", reference="ref")


def test_without_rescue_or_side_file_it_is_local_completions(tiny_model_dir, nowhere):
    """Nothing is asked of the server at start-up, and generation is lm-eval's own."""
    lm = make(tiny_model_dir, nowhere)
    assert lm.watch == "auto" and not lm.rescue_params.active and not lm.side_log.recording
