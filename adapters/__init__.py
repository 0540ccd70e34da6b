"""lm-eval models with loop rescue and FP16 planning, imported as ``qr_adapters``: ``qr-hf``
(lm-eval's ``hf``; also bitsandbytes or GPTQ checkpoints) and ``qr-vllm`` (lm-eval's
``vllm``, on vLLM's GPU or CPU build, its loop watch a logits processor in the engine); both
simulate RTN weights and write the side file."""
