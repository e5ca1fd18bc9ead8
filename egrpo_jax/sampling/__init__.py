"""Rollout sampling: the KV-cache engine, token sampling and one-shot `generate`."""

from egrpo_jax.sampling.generation import Generation, generate

__all__ = ["Generation", "generate"]
