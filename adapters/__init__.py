"""lm-eval models with loop rescue and FP16 planning, imported as ``qr_adapters``: ``qr-hf``
(lm-eval's ``hf``; also simulated RTN weights and bitsandbytes or GPTQ checkpoints) and
``qr-vllm`` (lm-eval's ``vllm``); both write the side file."""
