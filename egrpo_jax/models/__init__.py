"""Decoder models: config, NNX decoder, KV cache, sharded creation, HF / GGUF import and export, tokenizer."""

from egrpo_jax.models.config import ModelConfig, tiny_config
from egrpo_jax.models.decoder import Decoder
from egrpo_jax.models.kv_cache import KVCache, init_cache
from egrpo_jax.models.loading import Pretrained, load_config, load_pretrained, save_pretrained
from egrpo_jax.models.sharding import create_model, model_from_arrays
from egrpo_jax.models.tokenizer import Tokenizer

__all__ = [
    "Decoder", "KVCache", "ModelConfig", "Pretrained", "Tokenizer", "create_model", "init_cache", "load_config",
    "load_pretrained", "model_from_arrays", "save_pretrained", "tiny_config",
]
