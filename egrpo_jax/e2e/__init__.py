"""End to end: data + tokenizer + index -> tiny policy -> SFT -> eval -> RL -> eval -> table.

`pipeline.run_pipeline` is shared by `egrpo demo` and `egrpo replicate`; `settings` holds the
knobs that are not part of the run config schema (world size, tokenizer, evaluation).
"""
