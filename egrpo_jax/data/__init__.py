"""Entity-annotated QA data: schema + validated JSONL I/O, the grain question stream, and generators
(synth/: a synthetic world with an oracle for SFT demos; real/: real countries facts, FanOutQA)."""

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
