"""model.lora: defaults (off), targets as a comma string or a tuple, and one-line errors for bad values."""

import pytest

from egrpo_jax.assembly import lora_settings, model_config
from egrpo_jax.config import LORA_TARGETS, ConfigError, load_config


def test_lora_is_off_by_default_and_reaches_the_model_config(tmp_path):
    cfg = load_config()
    assert cfg.model.lora.rank == 0 and lora_settings(cfg) is None and model_config(cfg).lora_rank == 0
    cfg = load_config(None, ["model.lora.rank=8", "model.lora.alpha=16", "model.lora.targets=v, q,down",
                             "model.lora.base_dtype=bfloat16"])
    m = model_config(cfg)
    assert (m.lora_rank, m.lora_alpha, m.lora_targets, m.lora_base_dtype) == (8, 16.0, ("q", "v", "down"), "bfloat16")
    assert m.param_dtype == "float32" and m.base_param_dtype == "bfloat16"  # adapters float32, frozen base bf16
    f = tmp_path / "c.py"
    f.write_text("from egrpo_jax.config import default_config\n"
                 "def get_config():\n    c = default_config()\n    c.model.lora.rank = 2\n"
                 "    c.model.lora.targets = ('up', 'gate')\n    return c\n")
    assert lora_settings(load_config(str(f)))["lora_targets"] == ("gate", "up")
    assert model_config(load_config(None, ["model.lora.rank=2"])).lora_targets == LORA_TARGETS  # all 7 by default


@pytest.mark.parametrize("override,message", [
    ("model.lora.targets=q,attn", "config key model.lora.targets = 'q,attn': must be a comma string or tuple of "
                                  "names from ['q', 'k', 'v', 'o', 'gate', 'up', 'down']"),
    ("model.lora.targets=", "config key model.lora.targets = '': must be a comma string or tuple of names from"),
    ("model.lora.rank=-1", "config key model.lora.rank = -1: must be an integer >= 0"),
    ("model.lora.rank=100000", "config key model.lora.rank = 100000: must be in [0, 4096]"),
    ("model.lora.alpha=0", "config key model.lora.alpha = 0.0: must be a number > 0.0"),
    ("model.lora.base_dtype=int8", "config key model.lora.base_dtype = 'int8': must be one of ['float32', 'bfloat16'"),
    ("model.lora.base_dtype=bfloat16", "config key model.lora.base_dtype = 'bfloat16': only with model.lora.rank > 0"),
    ("model.lora.rnak=4", "config key model.lora.rnak: unknown; did you mean model.lora.rank?"),
])
def test_bad_lora_values_are_one_line_errors(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    assert message in str(e.value) and "\n" not in str(e.value)
