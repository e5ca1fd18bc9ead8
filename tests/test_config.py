import argparse

import pytest

from egrpo_jax.assembly import agent_config, model_config, sampling_params, tool_config
from egrpo_jax.commands.common import add_run_arguments, split_overrides
from egrpo_jax.config import ConfigError, load_config


def test_defaults_and_tiny_cpu_load():
    cfg = load_config()
    assert cfg.rl.alpha == 0.3 and cfg.rl.group_size == 8 and cfg.rl.aggregation == "seq_mean"
    assert cfg.rl.beta == 0.0 and cfg.optim.lr == 2e-6
    assert model_config(cfg).vocab_size == 257 and model_config(cfg).qkv_bias  # qwen2: q/k/v biases
    tiny = load_config("configs/tiny_cpu.py", ["rl.alpha=0.1", "rl.dynamic_sampling=true", "optim.lr=5e-4"])
    assert tiny.rl.alpha == 0.1 and tiny.rl.dynamic_sampling is True and tiny.optim.lr == 5e-4
    assert tiny.model.tokenizer == "data_out/syn/tokenizer" and tiny.model.tiny.vocab_size == 0
    assert agent_config(tiny).group_size == tiny.rl.group_size == 8  # the demo's recipe (configs/demo_cpu.py)
    assert sampling_params(tiny).top_p == 0.95
    assert tool_config(tiny).topk == 1  # the demo's tools: the demos hold their text
    assert model_config(tiny, tokenizer_vocab=1500).vocab_size == 1500 and not model_config(tiny, 1500).qkv_bias
    sft = load_config("configs/tiny_cpu.py:sft")
    assert sft.checkpoint.dir == tiny.checkpoint.init_from == "runs/tiny_sft/ckpt" and sft.train.steps > tiny.train.steps
    with pytest.raises(ConfigError, match="the run must be one of"):
        load_config("configs/tiny_cpu.py:nope")


@pytest.mark.parametrize(
    "override,message",
    [
        ("rl.alpha=-0.1", "config key rl.alpha = -0.1: must be a number >= 0.0"),
        ("rl.aggregation=mean", "config key rl.aggregation = 'mean': must be one of ['seq_mean', 'token_mean', 'dr_grpo']"),
        ("rl.group_size=x", "config key rl.group_size = 'x': must be an integer"),
        ("rl.nope=1", "config key rl.nope: unknown"),
        ("sampling.top_p=0", "config key sampling.top_p = 0.0: must be a number > 0.0 and <= 1.0"),
        ("rl.dynamic_sampling=maybe", "config key rl.dynamic_sampling = 'maybe': must be true or false"),
        ("rl.aggregation=dr_grpo", "config key rl.dr_grpo_norm = 0: must be >= 1"),
        ("rl.alpha_schedule=linear", "config key rl.alpha_decay_steps = 0: must be >= 1"),
        ("agent.prompt_style=weird", "config key agent.prompt_style = 'weird': must be one of ['full', 'short']"),
        ("optim.logprob_chunk=3", "optim.logprob_chunk = 3: must be 0 or a power of two"),
        ("mesh.data=0", "config key mesh.data = 0: must be an integer >= 1 or one of [-1]"),
    ],
)
def test_bad_values_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as e:
        load_config("configs/tiny_cpu.py", [override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("def get_config():\n    return {'rl': {'alhpa': 0.3}}\n")
    with pytest.raises(ConfigError, match="config key rl.alhpa: unknown"):
        load_config(str(bad))
    partial = tmp_path / "partial.py"
    partial.write_text("import ml_collections\ndef get_config():\n    return ml_collections.ConfigDict({'rl': {'alpha': 0.5}})\n")
    assert load_config(str(partial)).rl.alpha == 0.5
    with pytest.raises(ConfigError, match="file not found"):
        load_config(str(tmp_path / "missing.py"))


def test_cli_overrides_through_a_subparser():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_run_arguments(sub.add_parser("train"))
    argv, overrides = split_overrides(["train", "--config", "configs/tiny_cpu.py", "--config.rl.alpha=0.3",
                                       "--resume", "--config.rl.beta", "0.01"])
    args = parser.parse_args(argv)
    assert args.config == "configs/tiny_cpu.py" and args.resume
    assert overrides == ["rl.alpha=0.3", "rl.beta=0.01"]
    with pytest.raises(ConfigError, match="config override --config.rl.beta: missing value"):
        split_overrides(["train", "--config.rl.beta"])
    cfg = load_config(args.config, overrides)
    assert cfg.rl.beta == 0.01
    with pytest.raises(AttributeError):
        cfg.rl.new_key = 1  # locked after load


@pytest.mark.parametrize(
    "override,message",
    [
        ("rl.alpha=2", "config key rl.alpha = 2.0: must be in [0, 1] (the reward of a wrong rollout; above 1 it"),
        ("rl.alpha=inf", "config key rl.alpha = inf: must be a finite number"),
        ("rl.alpha=nan", "config key rl.alpha = nan: must be a finite number"),
        ("rl.beta=-inf", "config key rl.beta = -inf: must be a finite number"),
        ("optim.lr=10", "config key optim.lr = 10.0: must be in [0, 0.1]"),
        ("optim.b2=1.0", "config key optim.b2 = 1.0: must be in [0, 1)"),
        ("sampling.temperature=1e9", "config key sampling.temperature = 1000000000.0: must be in [0, 4]"),
        ("search.topk=100000", "config key search.topk = 100000: must be in [1, 100]"),
        ("agent.max_total_tokens=100000000", "config key agent.max_total_tokens = 100000000: must be in [2, 1.04858e+06]"),
        ("train.seed=99999999999", "config key train.seed = 99999999999: must be in [0, 4.29497e+09]"),
    ],
)
def test_values_out_of_range_or_not_finite_are_refused(override, message):
    with pytest.raises(ConfigError) as e:
        load_config("configs/tiny_cpu.py", [override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_every_float_key_refuses_infinity():
    from egrpo_jax.config import RULES, default_config, flatten

    floats = [k for k, v in flatten(default_config()).items() if isinstance(v, float)]
    assert "rl.alpha" in floats and "optim.lr" in floats
    for key in floats:
        with pytest.raises(ConfigError, match=f"config key {key} = inf: must be a finite number"):
            load_config(None, [f"{key}=inf"])
        assert not RULES[key][0](float("inf"))


@pytest.mark.parametrize("key,near", [("rl.alpah", "rl.alpha"), ("alpha", "rl.alpha"), ("search.top_k", "search.topk"),
                                      ("sampling.temprature", "sampling.temperature"), ("optimm.lr", "optim.lr")])
def test_unknown_keys_suggest_the_nearest(key, near, tmp_path):
    with pytest.raises(ConfigError, match=f"config key {key}: unknown; did you mean {near}\\?$"):
        load_config(None, [f"{key}=1"])
    section, _, leaf = key.rpartition(".")
    f = tmp_path / "c.py"
    body = {section: {leaf: 1}} if section else {leaf: 1}
    f.write_text(f"def get_config():\n    return {body!r}\n")
    with pytest.raises(ConfigError, match=f"did you mean {near}\\?$"):
        load_config(str(f))


def test_config_arguments_read_sys_argv_when_no_list_is_given(monkeypatch):
    """parse_args() without a list parses the command line, overrides included (bench scripts rely on it)."""
    import argparse

    from egrpo_jax.commands.common import add_config_arguments, parse_args

    ap = argparse.ArgumentParser()
    ap.add_argument("run_dir")
    add_config_arguments(ap)
    monkeypatch.setattr("sys.argv", ["prog", "runs/x", "--config.rl.alpha=0.3", "--config.train.steps", "4"])
    args = parse_args(ap)
    assert args.run_dir == "runs/x" and args.config_overrides == ["rl.alpha=0.3", "train.steps=4"]


@pytest.mark.parametrize("path", ["configs/demo_cpu.py", "configs/replicate_cpu.py"])
def test_pipeline_config_files_load(path):
    # they import the data generators' settings: a moved module breaks `egrpo demo` / `replicate` here
    from egrpo_jax.e2e.settings import load_pipeline_config

    pc = load_pipeline_config(path)
    assert pc.rl.train.steps >= 1 and pc.sft.train.steps >= 1 and pc.pipeline.tools.topk >= 1


@pytest.mark.parametrize("override,message", [
    ("rl.entity_credit=earned", "config key rl.entity_credit = 'earned': must be one of ['thought', 'grounded']"),
    ("rl.reward=grpo", "config key rl.reward = 'grpo': must be one of ['egrpo'] or 'module:function'"),
    ("rl.reward=my_rewards.f1", "config key rl.reward = 'my_rewards.f1': must be one of ['egrpo'] or 'module:function'"),
    ("rl.reward=my rewards:f", "config key rl.reward = 'my rewards:f': must be one of ['egrpo'] or 'module:function'"),
])
def test_reward_keys_are_checked_on_load(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert message in str(e.value) and "\n" not in str(e.value)


def test_reward_keys_default_to_the_paper_and_take_a_module_function():
    cfg = load_config()
    assert (cfg.rl.reward, cfg.rl.entity_credit) == ("egrpo", "thought")
    # the spec's form is checked on load; whether it imports, when the run starts (rewards.registry)
    cfg = load_config(None, ["rl.reward=pkg.my_rewards:f1_reward", "rl.entity_credit=grounded"])
    assert (cfg.rl.reward, cfg.rl.entity_credit) == ("pkg.my_rewards:f1_reward", "grounded")


def test_a_pipeline_config_whose_reward_does_not_import_fails_on_load(tmp_path):
    from egrpo_jax.e2e.settings import load_pipeline_config

    path = tmp_path / "pipe.py"
    path.write_text(open("configs/demo_cpu.py").read() + "\n\n_get = get_config\n\n\ndef get_config():\n"
                    "    c = _get()\n    c.rl.reward = 'egrpo_no_such_module:f'\n    return c\n")
    with pytest.raises(ConfigError, match=rf"^{path} get_config\(\): config key rl.reward = 'egrpo_no_such_module:f': "
                                          r"cannot import egrpo_no_such_module"):
        load_pipeline_config(str(path))


def test_the_sparse_start_differs_from_the_replicate_grid_in_its_sft_length_only():
    from egrpo_jax.e2e.settings import load_pipeline_config

    sparse, rep = load_pipeline_config("configs/sparse_cpu.py"), load_pipeline_config("configs/replicate_cpu.py")
    assert sparse.sft.train.steps == 400 < rep.sft.train.steps
    sparse.sft.train.steps = rep.sft.train.steps
    assert sparse.sft.to_json() == rep.sft.to_json() and sparse.rl.to_json() == rep.rl.to_json()
    assert sparse.pipeline == rep.pipeline  # the same world and data
