"""`egrpo gen-data --config FILE` writes the data the pipeline of that config builds."""

import json
import os

from egrpo_jax import cli
from egrpo_jax.datagen.synth.build import build_synthetic
from egrpo_jax.e2e.settings import load_pipeline_config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_gen_data_with_the_demo_config_writes_the_demos_the_demo_trains_on(tmp_path):
    config = os.path.join(ROOT, "configs", "demo_cpu.py")
    s = load_pipeline_config(config).pipeline
    assert s.demos.early_stop_rate > 0  # the field a rebuilt DemoConfig used to drop
    out = tmp_path / "syn"
    assert cli.main(["gen-data", "--world", "synthetic", "--config", config, "--out", str(out)]) == 0
    written = (out / "sft_demos.jsonl").read_text(encoding="utf-8").splitlines()
    expected = build_synthetic(s.world, s.demos, s.tools).demos
    assert len(written) == len(expected)
    kinds = [d["kind"] for d in expected]
    assert kinds.count("early_stop") > 0.2 * len(kinds)
    assert [json.loads(x) for x in written] == [json.loads(json.dumps(d)) for d in expected]
