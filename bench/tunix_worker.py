"""Runs INSIDE bench/.venv-tunix (google-tunix 0.1.7): Tunix's JAX sampler on an HF Qwen2 folder.

    bench/.venv-tunix/bin/python bench/tunix_worker.py SPEC.json   (written by bench_tunix.py)
Prints one JSON line: per batch, new tokens/s (compile excluded) and row 0's tokens.
"""

import json
import sys
import time

import jax
import numpy as np
from tunix.generate import sampler as sampler_lib
from tunix.models.qwen2 import model as qwen2_model
from tunix.models.qwen2 import params as qwen2_params


class IdTokenizer:
    """Prompts are token ids written as space-separated text; no BOS, EOS never produced."""

    def __init__(self, eos: int):
        self._eos = eos

    def encode(self, text, **kw):
        return [int(x) for x in text.split()]

    def decode(self, ids, **kw):
        return " ".join(str(int(i)) for i in ids)

    def bos_id(self):
        return 0  # falsy: Tunix prepends nothing

    def eos_id(self):
        return self._eos

    def pad_id(self):
        return 0


def main(path):
    with open(path) as f:
        spec = json.load(f)
    c = spec["config"]
    cfg = qwen2_model.ModelConfig(
        num_layers=c["num_layers"], vocab_size=c["vocab_size"], embed_dim=c["hidden_size"],
        hidden_dim=c["intermediate_size"], num_heads=c["num_heads"], head_dim=c["head_dim"],
        num_kv_heads=c["num_kv_heads"], rope_theta=int(c["rope_theta"]), norm_eps=c["rms_norm_eps"],
        use_tied_embedding=c["tie_embeddings"],
    )
    model = qwen2_params.create_model_from_safe_tensors(spec["hf_dir"], cfg)
    new, out = spec["new_tokens"], []
    for b in spec["batches"]:
        prompts = [" ".join(map(str, p)) for p in spec["prompts"][:b]]
        plen = len(spec["prompts"][0])
        smp = sampler_lib.Sampler(
            model, IdTokenizer(spec["eos"]),
            sampler_lib.CacheConfig(cache_size=plen + new, num_layers=cfg.num_layers,
                                    num_kv_heads=cfg.num_kv_heads, head_dim=cfg.head_dim),
        )
        kw = {"max_generation_steps": new, "max_prompt_length": plen, "temperature": 0.0, "eos_tokens": [spec["eos"]]}
        smp(prompts, **kw)  # compile
        best = float("inf")
        for _ in range(spec["reps"]):
            t0 = time.perf_counter()
            res = smp(prompts, **kw)
            jax.block_until_ready(res.tokens)
            best = min(best, time.perf_counter() - t0)
        toks = [np.asarray(t).tolist() for t in res.tokens]
        assert all(len(t) == new for t in toks), [len(t) for t in toks]
        out.append({"batch": b, "tok_s": b * new / best, "seconds": best, "row0": toks[0]})
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1])
