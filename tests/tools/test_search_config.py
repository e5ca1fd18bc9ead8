"""search.backend = bm25 | dense | hybrid | http: validation and the folder-kind check of search_spec."""

import pytest

from egrpo_jax.assembly import search_spec
from egrpo_jax.config import ConfigError, load_config


def test_dense_and_hybrid_need_an_index_folder():
    for kind in ("dense", "hybrid"):
        with pytest.raises(ConfigError, match=f"search.index_dir = '': must be an index folder when search.backend "
                                              f"= '{kind}' \\(build one with `egrpo index --kind {kind}`\\)"):
            load_config(None, [f"search.backend={kind}"])
    with pytest.raises(ConfigError, match=r"search.backend = 'sparse': must be one of \['bm25', 'dense', 'hybrid', 'http'\]"):
        load_config(None, ["search.backend=sparse"])


def test_search_spec_checks_the_folder_kind(small_index, tmp_path):
    small_index.save(tmp_path / "ix")
    assert search_spec(load_config(None, ["search.backend=bm25", f"search.index_dir={tmp_path / 'ix'}"])) == \
        str(tmp_path / "ix")
    with pytest.raises(ConfigError, match=r"search.backend = 'dense': search.index_dir .*ix holds a 'bm25' index"):
        search_spec(load_config(None, ["search.backend=dense", f"search.index_dir={tmp_path / 'ix'}"]))
    corpus = tmp_path / "c.jsonl"
    corpus.write_text("")
    # a corpus .jsonl is indexed on the spot by BM25 only; dense must not silently become BM25
    with pytest.raises(ConfigError, match="c.jsonl': not an index folder; build one with `egrpo index --kind hybrid`"):
        search_spec(load_config(None, ["search.backend=hybrid", f"search.index_dir={corpus}"]))
    assert search_spec(load_config(None, ["search.backend=bm25", f"search.index_dir={corpus}"])) == str(corpus)
