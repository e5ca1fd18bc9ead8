"""The README's tour, run in order: every `egrpo` command of the bash blocks marked `<!-- tour -->`,
in a fresh folder, shrunk by overrides so the whole path takes about a minute.

The commands are read from README.md itself, so a README line that stops working fails here. Only
sizes are overridden (steps, batch, questions); the paths, configs and flags are the README's.
"""

import json
import os
import re
import shlex

from egrpo_jax import cli

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARK = "<!-- tour -->"

# Per command: the flags appended to shrink the run (the last value of a repeated key wins).
_STEPS = ["--config.train.steps=2", "--config.optim.warmup_steps=1", "--config.logging.progress=false"]
SHRINK = {
    "gen-data": ["--questions", "240"],
    "sft": _STEPS + ["--config.data.batch_size=4"],
    "train": _STEPS + ["--config.data.batch_size=2", "--config.rl.group_size=2"],
    "eval": ["--limit", "2"],
    "generate": ["--max-new-tokens", "4"],
}


def tour_commands(readme: str) -> list[list[str]]:
    """argv of each `.venv/bin/egrpo` line (continuations joined, comments dropped) in the marked blocks."""
    out = []
    for block in re.findall(re.escape(MARK) + r"\s*```bash\n(.*?)```", readme, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words and words[0] == ".venv/bin/egrpo":
                out.append(words[1:])
    return out


def test_the_readme_marks_the_tour():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        cmds = [c[0] for c in tour_commands(f.read())]
    # the newcomer's path: data, SFT, RL, resume, export, a look at the policy, evaluation
    assert cmds == ["gen-data", "sft", "train", "train", "convert", "generate", "eval"]


def test_readme_tour_runs_in_order(tmp_path, monkeypatch, capsys):
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        commands = tour_commands(f.read())
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(ROOT, "configs"), tmp_path / "configs")
    for argv in commands:
        full = argv + SHRINK.get(argv[0], [])
        assert cli.main(full) == 0, f"egrpo {shlex.join(full)}: {capsys.readouterr().err[-2000:]}"
    # what the later commands relied on
    assert (tmp_path / "runs/tiny/ckpt/policy.json").is_file()
    assert (tmp_path / "runs/tiny-hf/tokenizer.json").is_file()
    summary = json.loads((tmp_path / "runs/eval_tiny/summary.json").read_text())
    assert summary["questions"] == 2
