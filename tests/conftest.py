"""Shared pytest fixtures. Tests run offline (DESIGN.md section 6)."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

# Never touch the network, whatever a test imports.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

_TESTS_DIR = Path(__file__).resolve().parent
# ``from helpers.x import y`` in every test: tests/ is on sys.path only while ``helpers`` is
# imported (its modules are then found through the package), since the test folders named
# after the packages (tests/qr_adapters/, ...) would shadow them there as namespace packages.
sys.path.insert(0, str(_TESTS_DIR))
try:
    importlib.import_module("helpers")
finally:
    sys.path.remove(str(_TESTS_DIR))

from helpers.tiny_model import build_tiny_model  # noqa: E402

FIXTURES_DIR = _TESTS_DIR.parents[1] / "shared" / "fixtures" / "r1-distill-1.5b"


@pytest.fixture(scope="session")
def tiny_model_factory(tmp_path_factory):
    """``make(name, **build_kwargs) -> Path``: tiny models, each built once per session.

    ``build_kwargs`` go to :func:`tiny_model.build_tiny_model` (``seed``, ``logit_bias``);
    the same ``name`` always returns the first directory built under it.
    """
    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[str, Path] = {}

    def make(name: str, **build_kwargs) -> Path:
        if name not in built:
            built[name] = build_tiny_model(root / name, **build_kwargs)
        return built[name]

    return make


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_model_factory) -> Path:
    """A tiny reasoning-style model directory: loadable by ``--model hf pretrained=DIR``;
    its chat template opens ``<think>``; greedy decoding never emits eos."""
    return tiny_model_factory("default", seed=0)


@pytest.fixture(scope="session")
def looping_pair(tmp_path_factory) -> tuple[Path, Path]:
    """(low-bit, reference) checkpoints that loop on cue (``looping_checkpoint``)."""
    from helpers.looping_checkpoint import build_rescue_pair

    return build_rescue_pair(tmp_path_factory.mktemp("looping"))


@pytest.fixture(scope="session")
def looping_tok(looping_pair):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(looping_pair[0])


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Real outputs of DeepSeek-R1-Distill-Qwen-1.5B at several precisions (shared, read-only)."""
    if not FIXTURES_DIR.is_dir():
        pytest.skip(
            f"shared fixtures not found at {FIXTURES_DIR}: real quantized-model outputs "
            "are only available beside the checkout"
        )
    return FIXTURES_DIR
