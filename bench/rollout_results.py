"""bench/results/bench_rollout.json: the throughput results in one file, a section per benchmark.

    PYTHONPATH=. .venv/bin/python -m bench.rollout_results      # the ratios, their goals, their loads

Each benchmark sets its own section when it runs at full size (bench_rollout: continuous;
bench_tunix_agentic: tunix_agentic; bench_offpolicy: offpolicy; bench_train: train; bench_tunix:
sampler), with its ratio, the load average at its start and end, the time, the commit and the CPU
it was measured on. Sections are measured in separate runs, so each ratio compares two arms of one run,
never numbers across sections.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from egrpo_jax.runtime import cpu_facts

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "results", "bench_rollout.json")

# section -> (what the ratio divides, goal or None)
SECTIONS = {
    "continuous": ("sync_s / continuous_s, uneven workload, S = 16", 1.5),
    "tunix_agentic": ("tunix_s / ours_s, Tunix 0.1.7's agentic path, demo workload", 3.0),
    "offpolicy": ("RL step s, off_policy_steps 0 / 1, 50 ms search latency", None),
    "train": ("tokens/s ours / Tunix GRPO step", 1.5),
    "sampler": ("tok/s ours / Tunix sampler, batch 64", 1.5),
}


def _commit() -> str:
    """HEAD, marked '+dirty' when tracked files differ from it (the numbers then measure more)."""
    def git(*a):
        return subprocess.run(["git", *a], cwd=os.path.dirname(HERE), capture_output=True, text=True).stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    # this file itself is not code: a run that wrote another section does not make the next one dirty
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!bench/results") else "")


def _cpu() -> str:
    """The CPU and the cores this process may use: ratios differ between machine kinds."""
    c = cpu_facts()
    return f"{c['cpu']}, {c['cores']} cores"


def load() -> dict:
    if not os.path.exists(PATH):
        return {}
    with open(PATH, encoding="utf-8") as f:
        return json.load(f)


def set_section(name: str, section: dict) -> None:
    """Write one benchmark's section (it must hold ratio, load_avg_start, load_avg_end)."""
    if name not in SECTIONS:
        raise ValueError(f"bench_rollout.json: unknown section {name!r}; allowed: {', '.join(SECTIONS)}")
    missing = [k for k in ("ratio", "load_avg_start", "load_avg_end") if k not in section]
    if missing:
        raise ValueError(f"bench_rollout.json section {name!r} lacks {', '.join(missing)}")
    data = load()
    data[name] = dict(section, measured=time.strftime("%Y-%m-%d %H:%M"), commit=_commit(), cpu=_cpu())
    os.makedirs(os.path.dirname(PATH), exist_ok=True)
    with open(PATH, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
    print(f"set the {name} section of bench/results/bench_rollout.json")


def table(data: dict) -> str:
    lines = ["| section | ratio | goal | met | load start -> end | measured | commit | cpu | ratio of |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, (what, goal) in SECTIONS.items():
        s = data.get(name)
        if s is None:
            lines.append(f"| {name} | not measured | {goal or '-'} | | | | | | {what} |")
            continue
        met = "-" if goal is None else ("yes" if s["ratio"] >= goal else "no")
        load = ("unrecorded" if s["load_avg_start"] is None  # a run from before loads were kept
                else f"{s['load_avg_start'][0]:.2f} -> {s['load_avg_end'][0]:.2f}")
        lines.append(f"| {name} | {s['ratio']:.2f}x | {f'>= {goal}x' if goal else '-'} | {met} | {load} | "
                     f"{s.get('measured', '?')} | {s.get('commit', '?')} | {s.get('cpu', 'unrecorded')} | {what} |")
    return "\n".join(lines)


def main() -> int:
    print(table(load()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
