"""`egrpo replicate`: GRPO vs E-GRPO on the demo's synthetic world (configs/demo_cpu.py), sized for
about two hours on a 2-core CPU at full size (4 alphas x 3 seeds). `--quick` shrinks it.

Same world, tokenizer, policy and SFT as the demo; RL runs are longer and use more samples.
"""

import importlib.util
import os

_spec = importlib.util.spec_from_file_location("_demo_cpu", os.path.join(os.path.dirname(__file__), "demo_cpu.py"))
_demo = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_demo)


def get_sft_config():
    return _demo.get_sft_config()


def get_config():
    c = _demo.get_config()
    c.train.steps = 12
    return c


def get_pipeline():
    return _demo.get_pipeline()
