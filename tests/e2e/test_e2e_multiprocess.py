"""`egrpo train` on a tiny config: two jax.distributed processes (2 CPU devices each, gloo) log the
same metrics as one process with 4 devices (same global mesh, same seeds)."""

import json
import os
import subprocess
import sys

from procs import free_port, wait_all

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "e2e_mp_worker.py")
TIMEOUT_S = 240
# Wall-clock and throughput keys differ between runs by nature; everything else must match exactly.
VOLATILE = ("time/", "tokens_per_s", "agent/time/", "agent/tool_latency/")

CONFIG = '''
from egrpo_jax.config import default_config

def get_config():
    c = default_config()
    c.model.tokenizer = {tok!r}
    c.model.tiny.update(family="llama", vocab_size={vocab}, hidden_size=32, intermediate_size=64, num_layers=1,
                        num_heads=2, num_kv_heads=2, head_dim=16, tie_embeddings=True, max_position_embeddings=128)
    c.mesh.data, c.mesh.fsdp, c.mesh.tensor = 2, -1, 1
    c.data.questions, c.data.corpus, c.search.index_dir = {train!r}, {corpus!r}, {index!r}
    c.search.topk = 1
    c.agent.update(prompt_style="short", max_tool_calls=2, max_total_tokens=128, max_turn_tokens=0)
    c.train.update(steps=2, max_seq_len=128)
    c.data.batch_size, c.rl.group_size = 2, 2
    c.optim.update(lr=1e-2, warmup_steps=0)
    # an untrained policy earns reward 0 everywhere (no advantage signal); the KL term makes every
    # step an update, so the sharded reference model and the gradient all-reduce are exercised too
    c.rl.beta = 0.1
    c.logging.progress = False
    return c
'''


def _launch(args, env):
    return subprocess.Popen([sys.executable, WORKER, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait(procs):
    return wait_all(procs, TIMEOUT_S, "egrpo train workers")


def _rows(d):
    with open(os.path.join(d, "metrics.jsonl")) as f:
        return [{k: v for k, v in json.loads(x).items() if not k.startswith(VOLATILE)} for x in f if x.strip()]


def test_train_two_processes_match_one(tmp_path):
    from test_e2e_pipeline import micro_config

    from egrpo_jax.e2e.pipeline import build_pipeline_data
    from egrpo_jax.models.tokenizer import Tokenizer

    d = build_pipeline_data(micro_config().pipeline, str(tmp_path / "data"))
    cfg = tmp_path / "tiny_mp.py"
    cfg.write_text(CONFIG.format(tok=d.tokenizer, vocab=Tokenizer.from_pretrained(d.tokenizer).vocab_size,
                                 train=d.train, corpus=d.corpus, index=d.index))
    env = {k: v for k, v in os.environ.items() if k not in ("EGRPO_CPU_DEVICES", "XLA_FLAGS")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH", "")]))
    port = free_port()
    logs = [tmp_path / f"log{i}" for i in (0, 1)]
    mp_out = _wait([_launch([i, port, cfg, logs[i]], env) for i in (0, 1)])
    single_out = _wait([_launch([-1, 0, cfg, tmp_path / "single"], env)])
    # the two workers really formed one 4-device job; the reference really ran alone
    assert all("PROCESSES=2 GLOBAL_DEVICES=4" in out for out in mp_out)
    assert "PROCESSES=1 GLOBAL_DEVICES=4" in single_out[0]
    single, p0, p1 = _rows(tmp_path / "single"), _rows(logs[0]), _rows(logs[1])
    assert [r["step"] for r in single] == [1, 2]
    assert p0 == single and p1 == single
    # the rollouts were real work: tokens were sampled, and at least one step trained on them
    assert all(r["response/model_tokens"] > 0 for r in single)
    assert any(r["trained_tokens"] > 0 for r in single)
