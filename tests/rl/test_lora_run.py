"""A LoRA run end to end on a tiny HF base: `egrpo sft` killed (SIGKILL) and resumed continues with the
same losses; its checkpoints hold only the adapters and name the base (path + hash); resuming, or
starting RL from it, on another base is a one-line error naming both; the run folder loads as base +
adapters, and `egrpo convert` merges them into an HF folder that transformers reads with our logits."""

import json
import os
import signal
import subprocess
import sys
import time

import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

from egrpo_jax import cli
from egrpo_jax.checkpoint import Checkpointer
from egrpo_jax.errors import RunError
from egrpo_jax.metrics_log import read_metrics
from egrpo_jax.models import load_pretrained, save_pretrained
from egrpo_jax.models.config import tiny_config
from egrpo_jax.models.lora import base_sha256
from egrpo_jax.models.sharding import create_model
from egrpo_jax.policy import POLICY_FILE, load_policy

torch = pytest.importorskip("torch")
torch.set_num_threads(1)
transformers = pytest.importorskip("transformers")

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE_CFG = tiny_config("llama", vocab_size=300, hidden_size=32, intermediate_size=64, num_layers=1, num_heads=2,
                       num_kv_heads=2, head_dim=16, tie_embeddings=False)
STEPS = 8
TOKENS = jnp.asarray([[5, 70, 33, 2, 290, 41, 7, 7, 60]], jnp.int32)


def _write_demos(path, n=4):
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"question": f"Who founded Org{i}?", "segments": [
                {"role": "model", "text": f"<think>P{i} did</think>\n<answer>P{i}</answer>"}]}) + "\n")


def _config(tmp, name):
    path = tmp / f"{name}.py"
    path.write_text(f"""
from egrpo_jax.config import default_config
def get_config():
    c = default_config()
    c.model.path = "{tmp}/base"
    c.model.tokenizer = "byte"
    c.model.lora.update(rank=4, alpha=8.0, targets="q,v,o,up,down")
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 2, -1, 1
    c.data.demos = "{tmp}/demos.jsonl"
    c.data.batch_size = 2
    c.agent.prompt_style = "short"
    c.optim.lr = 1e-2
    c.train.steps = {STEPS}
    c.train.max_seq_len = 512
    c.checkpoint.dir = "{tmp}/{name}/ckpt"
    c.checkpoint.every = 2
    c.logging.dir = "{tmp}/{name}/logs"
    c.logging.progress = False
    return c
""")
    return str(path)


def _egrpo(*args):
    env = dict(os.environ, EGRPO_CPU_DEVICES="2", PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-m", "egrpo_jax.cli", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _losses(folder):
    rows = read_metrics(str(folder / "logs" / "sft"))
    steps = [r["step"] for r in rows]
    assert steps == sorted(set(steps)), steps
    return {r["step"]: r["loss"] for r in rows}


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory):
    """An uninterrupted LoRA SFT run ("ref") and one killed with SIGKILL after a few steps and resumed ("run")."""
    tmp = tmp_path_factory.mktemp("lora")
    save_pretrained(create_model(BASE_CFG, seed=0), None, str(tmp / "base"))
    save_pretrained(create_model(BASE_CFG, seed=1), None, str(tmp / "other_base"))
    _write_demos(tmp / "demos.jsonl")
    ref, run = _egrpo("sft", "--config", _config(tmp, "ref")), _egrpo("sft", "--config", _config(tmp, "run"))
    log = tmp / "run" / "logs" / "sft" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and run.poll() is None:
        if log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert run.poll() is None, run.communicate()[1][-2000:]
    os.kill(run.pid, signal.SIGKILL)  # no chance to clean up, possibly mid-save
    run.wait()
    killed_at = max(_losses(tmp / "run"))
    resumed = _egrpo("sft", "--config", _config(tmp, "run"), "--resume")
    assert resumed.wait() == 0, resumed.communicate()[1][-3000:]
    assert ref.wait() == 0, ref.communicate()[1][-3000:]
    return tmp, killed_at


def test_a_killed_lora_run_resumes_with_the_same_losses(lora_run):
    tmp, killed_at = lora_run
    assert killed_at < STEPS
    ref, run = _losses(tmp / "ref"), _losses(tmp / "run")
    assert sorted(run) == sorted(ref) == list(range(1, STEPS + 1))
    for step in ref:
        assert run[step] == pytest.approx(ref[step], rel=1e-6, abs=1e-7), step
    assert ref[STEPS] < ref[1]  # the adapters learn


def test_a_lora_checkpoint_holds_the_adapters_and_names_its_base(lora_run):
    tmp, _ = lora_run
    ckpt = tmp / "run" / "ckpt"
    spec = json.loads((ckpt / POLICY_FILE).read_text())
    base = load_pretrained(str(tmp / "base"), with_tokenizer=False)  # the file's weights, as float32
    assert spec["base"] == {"path": str(tmp / "base"), "seed": None, "sha256": base_sha256(base.model)}
    assert spec["model"]["lora_rank"] == 4 and spec["model"]["lora_targets"] == ["q", "v", "o", "up", "down"]
    ck = Checkpointer(str(ckpt))
    meta = ck.manager.restore(STEPS, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    ck.close()
    params = [p for p in meta["paths"] if p.startswith(".params")]
    assert len(params) == 5 * 2 and all("_lora']" in p for p in params)  # a, b of 5 targets, 1 layer
    # the optimizer state mirrors the adapters; no base weight is in the checkpoint at all
    assert not [p for p in meta["paths"] if "_lora']" not in p and p.endswith(("['wq']", "['embed']", "['scale']"))]


def test_resuming_on_another_base_is_one_line_naming_both(lora_run):
    tmp, _ = lora_run
    p = _egrpo("sft", "--config", _config(tmp, "run"), "--resume", f"--config.model.path={tmp}/other_base",
               f"--config.train.steps={STEPS + 2}")
    _, err = p.communicate()
    assert p.returncode == 1, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-3000:]
    assert lines[0].startswith(f"egrpo sft: checkpoint.dir {tmp}/run/ckpt: its adapters were trained on base "
                               f"{tmp}/base (sha256 ")
    assert f"this run's base is {tmp}/other_base (sha256 " in lines[0]


def test_rl_starts_from_the_lora_sft_adapters_on_the_same_base_only(lora_run):
    from egrpo_jax.assembly import build_policy
    from egrpo_jax.config import load_config
    from egrpo_jax.mesh import single_device_mesh

    tmp, _ = lora_run
    cfg = load_config(_config(tmp, "run"), ["checkpoint.dir="])
    model, _ = build_policy(cfg, single_device_mesh(), init_from=str(tmp / "run" / "ckpt"))
    run = load_policy(str(tmp / "run" / "ckpt")).model
    np.testing.assert_array_equal(np.asarray(model(TOKENS)), np.asarray(run(TOKENS)))
    other = load_config(_config(tmp, "run"), ["checkpoint.dir=", f"model.path={tmp}/other_base"])
    with pytest.raises(RunError, match=f"checkpoint.init_from {tmp}/run/ckpt: its adapters were trained on base "
                                       f"{tmp}/base .*, this run's base is {tmp}/other_base"):
        build_policy(other, single_device_mesh(), init_from=str(tmp / "run" / "ckpt"))


def test_the_run_folder_loads_as_base_plus_adapters_and_converts_merged(lora_run, tmp_path, capsys):
    tmp, _ = lora_run
    loaded = load_policy(str(tmp / "run" / "ckpt"))
    assert loaded.config.lora_rank == 4
    ours = np.asarray(loaded.model(TOKENS))
    base = np.asarray(load_pretrained(str(tmp / "base"), with_tokenizer=False).model(TOKENS))
    assert np.abs(ours - base).max() > 1e-3  # the trained adapters are on
    assert any(np.any(np.asarray(v.get_value()) != 0) for _, v in
               nnx.to_flat_state(nnx.state(loaded.model, nnx.LoRAParam)))
    out = tmp_path / "hf"
    assert cli.main(["convert", "--model", str(tmp / "run" / "ckpt"), "--out", str(out)]) == 0
    assert "LoRA rank 4 adapters merged" in capsys.readouterr().out
    ref = transformers.AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = ref(torch.tensor(np.asarray(TOKENS))).logits.numpy()
    np.testing.assert_allclose(theirs, ours, atol=1e-4)


def test_a_run_whose_base_changed_on_disk_is_refused(lora_run, tmp_path):
    import shutil

    tmp, _ = lora_run
    ckpt = tmp_path / "ckpt"
    shutil.copytree(tmp / "run" / "ckpt", ckpt)
    spec = json.loads((ckpt / POLICY_FILE).read_text())
    spec["base"]["path"] = str(tmp / "other_base")  # as if the base folder were replaced by other weights
    (ckpt / POLICY_FILE).write_text(json.dumps(spec))
    with pytest.raises(ValueError, match=f"{ckpt}: its adapters were trained on base {tmp}/other_base "
                                         r"\(sha256 [0-9a-f]{12}\); the weights there now have sha256 [0-9a-f]{12}$"):
        load_policy(str(ckpt))
