import pytest

from egrpo_jax.data.schema import Document
from egrpo_jax.tools.bm25 import Bm25Index

AGENT_DOCS = [
    Document("d1", "Paris", "Paris is the capital and largest city of France, on the Seine."),
    Document("d2", "Berlin", "Berlin is the capital of Germany and its largest city.", "https://wiki.example/Berlin"),
    Document("d3", "Rome", "Rome is the capital city of Italy, founded on seven hills."),
    Document("d4", "Seine", "The Seine is a river in northern France that flows through Paris."),
    Document("d5", "Danube", "The Danube flows through Vienna, Budapest and Belgrade."),
]


@pytest.fixture(scope="session")
def agent_index():
    return Bm25Index.build(AGENT_DOCS)
