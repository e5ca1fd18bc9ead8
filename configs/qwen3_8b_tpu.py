"""E-GRPO on Qwen3-8B on a TPU slice: `--config configs/qwen3_8b_tpu.py:SLICE`.

SLICE is one of configs/tpu_common.SLICES (v5p-16/32/64/128, v5litepod-16/64, v4-32/128). The model
is an HF folder copied to every worker (`model.path`); start from an SFT checkpoint with
`--config.checkpoint.init_from=DIR`. Launch with tpu_scripts/ (docs/tpu.md).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tpu_common import tpu_config  # noqa: E402


def get_config(slice_name: str = "v5p-64"):
    return tpu_config("models/Qwen3-8B", slice_name)
