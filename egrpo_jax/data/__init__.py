"""Entity-annotated QA data: schema + validated JSONL I/O and the grain question stream (the
generators that write such data live in egrpo_jax/datagen/)."""

from egrpo_jax.data.io import (
    DataError,
    load_corpus,
    load_questions,
    read_corpus,
    read_jsonl,
    read_questions,
    write_corpus,
    write_jsonl,
    write_questions,
)
from egrpo_jax.data.schema import Document, Entity, QARecord

__all__ = [
    "DataError", "Document", "Entity", "QARecord", "load_corpus", "load_questions", "read_corpus", "read_jsonl",
    "read_questions", "write_corpus", "write_jsonl", "write_questions",
]
