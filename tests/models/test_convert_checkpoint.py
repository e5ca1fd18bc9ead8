"""`egrpo convert --checkpoint DIR --config FILE`: a training checkpoint becomes an HF folder that
our loader and transformers read back with the trained (not the initial) weights."""

import jax
import numpy as np
from flax import nnx

from egrpo_jax import cli
from egrpo_jax.checkpoint import Checkpointer
from egrpo_jax.datagen.bpe import train_bpe
from egrpo_jax.mesh import single_device_mesh
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.loading import load_pretrained
from egrpo_jax.models.sharding import create_model
from egrpo_jax.rl.batch import pack_sequences
from egrpo_jax.rl.learner import Learner, LossSettings, OptimSettings

CONFIG = """
from egrpo_jax.config import default_config

def get_config():
    c = default_config()
    c.model.tokenizer = {tok!r}
    c.model.tiny.update(family="llama", vocab_size={vocab}, hidden_size=32, intermediate_size=64, num_layers=1,
                        num_heads=2, num_kv_heads=2, head_dim=16, tie_embeddings=True)
    return c
"""


def test_convert_training_checkpoint(tmp_path, capsys):
    tok = train_bpe(["Kopo is a harbour town. The mayor of Kopo is Tana Reti."] * 20, vocab_size=300)
    tok.save(str(tmp_path / "tok"))
    cfg = tiny_config("llama", vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_layers=1,
                      num_heads=2, num_kv_heads=2, head_dim=16)
    mesh = single_device_mesh()
    learner = Learner(create_model(cfg, mesh=mesh, seed=0), mesh, OptimSettings(lr=5e-2), LossSettings(kind="sft"))
    before = [np.asarray(x) for x in jax.tree.leaves(learner.state.params)]
    batch = pack_sequences([[1, 2, 3, 4, 5, 6]] * 4, [[0, 0, 1, 1, 1, 1]] * 4)
    learner.train_step(batch)
    learner.train_step(batch)
    trained = [np.asarray(x) for x in jax.tree.leaves(learner.state.params)]
    assert any(not np.array_equal(a, b) for a, b in zip(before, trained))
    ck = Checkpointer(str(tmp_path / "ckpt"), every=1, keep=1)
    ck.save(2, learner.state)
    ck.close()
    (tmp_path / "run.py").write_text(CONFIG.format(tok=str(tmp_path / "tok"), vocab=tok.vocab_size))

    out = tmp_path / "hf"
    assert cli.main(["convert", "--checkpoint", str(tmp_path / "ckpt"), "--config", str(tmp_path / "run.py"),
                     "--out", str(out)]) == 0
    loaded = load_pretrained(str(out))
    got = [np.asarray(x) for x in jax.tree.leaves(nnx.state(loaded.model, nnx.Param))]
    for a, b in zip(got, trained):
        np.testing.assert_array_equal(a, b)
    assert loaded.tokenizer.encode("The mayor of Kopo") == tok.encode("The mayor of Kopo")

    import torch
    import transformers

    ref = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32)
    ids = [tok.encode("The mayor of Kopo is Tana Reti.")]
    with torch.no_grad():
        want = ref(torch.tensor(ids)).logits.numpy()
    np.testing.assert_allclose(np.asarray(loaded.model(jax.numpy.asarray(ids))), want, atol=1e-4)


def test_convert_checkpoint_needs_config(tmp_path, capsys):
    assert cli.main(["convert", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "--checkpoint needs --config" in capsys.readouterr().err
    assert cli.main(["convert", "--out", str(tmp_path / "o")]) == 2
    assert "exactly one of --model" in capsys.readouterr().err
