"""The embedded tiny reasoning model that ``qr-eval demo`` evaluates: its checkpoint files live
in this folder (:data:`TOY_MODEL_DIR`, loadable as ``pretrained=``), beside the code that made
them: ``chat_tokenizer`` (its tokenizer and chat template) and ``training``
(``python -m qr_adapters.toy_model.training --out DIR`` retrains it).
"""

from pathlib import Path

TOY_MODEL_DIR = Path(__file__).resolve().parent
"""The shipped checkpoint."""
