"""Reward over-optimisation on a task whose true reward is known (Gao et al. 2022), end to end on the CPU.

The gold reward (``--gold``) is either a transparent rule, the VADER lexicon's compound sentiment of the
reply, in [-1, 1] (Hutto & Gilbert 2014; the PyPI package ``vaderSentiment``; the default), or a reward
model folder standing in for people, as Gao et al.'s gold reward model did (e.g. the independent judge
of ``configs/pipeline-smollm2-full.yaml``). The policy never sees it:

1. ``rankings``: the start policy samples ``--samples`` replies to each of ``--prompts`` HH-RLHF harmless
   prompts; gold ranks them (equal scores tie; a prompt whose replies all tie is dropped). Written to
   ``OUT/rankings.jsonl``: every pair of differently ranked replies is one gold label.
2. ``proxy``: a small proxy reward model is trained on those rankings with ``alignkit rm`` (``OUT/proxy``).
3. ``ppo``: PPO optimises the proxy, once per ``--betas`` value (fixed KL coefficient, ``OUT/ppo-beta-B``);
   gold is logged as a monitor (``rl.monitors``: ``monitor_gold`` for VADER, ``monitor_<folder name>`` for
   a reward model), never optimised.
4. ``plot``: per run, gold and proxy reward gained since the first iteration against √KL(π ‖ π_ref), with
   Gao et al.'s RL form fitted and the observed peak marked (``OUT/overoptimisation-beta-B.png``); the
   training-curve diagnostics of every run to ``OUT/summary.json``.

    pip install -e '.[bench]'
    python benchmarks/overoptimisation.py all --out runs/overopt
    python benchmarks/overoptimisation.py all --out runs/overopt-judge --gold runs/pipeline-smollm2-full/judge

Each step skips what an earlier invocation finished; ``--set key=value`` overrides the PPO runs' config.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
import yaml
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from alignkit.config import GenerationConfig, RewardSourceConfig
from alignkit.data.records import Prompt
from alignkit.data.sources import load_records
from alignkit.evaluate.plots import gao_plot, line_panels
from alignkit.evaluate.training_curves import rl_curve_diagnostics
from alignkit.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from alignkit.rl.generation import load_policy_generator, prompt_token_rows
from alignkit.rl.rewards import ModelReward

HERE = Path(__file__).resolve().parent
BASE_CONFIG = HERE.parent / "configs" / "ppo-smollm2-hh.yaml"
MAX_NEW_TOKENS, MAX_PROMPT_TOKENS = 24, 32
GOLD_MAX_LENGTH = 512
_VADER = SentimentIntensityAnalyzer()
PROXY = {
    "model": {"name": "smollm2-135m"},
    "lora": {"enabled": True, "r": 16, "alpha": 32, "target_modules": ["q_proj", "v_proj", "down_proj"],
             "layers": "top 8"},
    "data": {"eval_fraction": 0.1, "max_length": 64, "on_error": "skip"},
    "train": {"seed": 0, "epochs": 2, "batch_size": 8, "micro_batch_size": 4, "learning_rate": 5e-4,
              "warmup_steps": 2, "schedule": "cosine"},
    "reward": {"data_format": "rankings", "pooling": "mean"},
}
"""The proxy reward model's config (``data.train`` and ``output_dir`` are added): LoRA on the top 8 layers,
mean pooling over the reply, 2 epochs at 5e-4 in batches of 8 rankings."""


def gold(prompts, completions) -> list[float]:
    """The true reward: VADER compound sentiment of each reply (``rl.monitors`` / reward-function form)."""
    return [_VADER.polarity_scores(c.text)["compound"] for c in completions]


def gold_scores(gold_spec: str, prompts: list, completions: list) -> list[float]:
    """Gold of each (prompt messages, completion): VADER, or the reward model in folder ``gold_spec``."""
    if gold_spec == "vader":
        return gold(prompts, completions)
    judge = ModelReward(RewardSourceConfig(kind="model", path=gold_spec, max_length=GOLD_MAX_LENGTH))
    return judge([Prompt(tuple(p)) for p in prompts], completions).tolist()


def gold_monitor(gold_spec: str) -> tuple[str, str]:
    """The ``rl.monitors`` entry of the gold reward and the metric it is logged as."""
    if gold_spec == "vader":
        return "overoptimisation:gold", "monitor_gold"
    return gold_spec, f"monitor_{Path(gold_spec).name}"


def gold_ranks(scores: list[float]) -> list[int]:
    """Dense ranks of ``scores``, 1 for the highest; equal scores share a rank (a tie)."""
    distinct = sorted(set(scores), reverse=True)
    return [distinct.index(score) + 1 for score in scores]


def make_rankings(out: Path, num_prompts: int, samples: int, seed: int, gold_spec: str) -> None:
    """``samples`` sampled replies per prompt from the start policy, ranked by gold."""
    records = load_records("hh-rlhf-harmless", "prompt", on_error="skip").records
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed)).tolist()
    prompts = [records[i].prompt for i in order[:num_prompts]]
    generator = load_policy_generator("smollm2-135m")
    rows = prompt_token_rows(prompts, generator.tokenizer, MAX_PROMPT_TOKENS)
    config = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, seed=seed, batch_size=64,
                              max_prompt_length=MAX_PROMPT_TOKENS)
    completions = generator.generate_ids([row for row in rows for _ in range(samples)], config)
    scores = gold_scores(gold_spec, [p for p in prompts for _ in range(samples)], completions)
    lines = []
    for i, prompt in enumerate(prompts):
        group = slice(i * samples, (i + 1) * samples)
        ranks = gold_ranks(scores[group])
        if len(set(ranks)) > 1:
            row = {"prompt": list(prompt), "responses": [c.text for c in completions[group]], "ranks": ranks}
            lines.append(json.dumps(row) + "\n")
    atomic_write_text(out / "rankings.jsonl", "".join(lines))
    print(f"rankings: {len(lines)} of {len(prompts)} prompts had replies gold tells apart")


def train_proxy(out: Path) -> None:
    """``alignkit rm`` on the gold rankings with the :data:`PROXY` config."""
    data = {"train": str(out / "rankings.jsonl"), **PROXY["data"]}
    atomic_write_text(out / "proxy.yaml", yaml.safe_dump({"output_dir": str(out / "proxy"), **PROXY, "data": data}))
    _alignkit("rm", out / "proxy.yaml", [])


def run_ppo(out: Path, beta: float, iterations: int, gold_spec: str, overrides: list[str]) -> None:
    """PPO against the proxy with a fixed KL coefficient ``beta``, gold logged as a monitor: the recipe of
    configs/ppo-smollm2-hh.yaml with a value head, 4 PPO epochs at 2e-3 (at 5e-4 and 2 epochs the policy
    barely moved in 7 iterations) and unfinished replies kept as scored (no penalty)."""
    _alignkit("rl", BASE_CONFIG, [
        f"output_dir={out / f'ppo-beta-{beta:g}'}", f"reward.path={out / 'proxy'}", "reward.max_length=64",
        f"rl.kl_coef={beta}", "rl.kl_target=null", "rl.kl_horizon=10000",  # fixed β: the recipe's horizon is off
        "rl.critic=head", "rl.unfinished=score",
        f"rl.iterations={iterations}", "rl.eval_prompts=0", f"rl.monitors=[{gold_monitor(gold_spec)[0]}]",
        f"rl.monitor_max_length={GOLD_MAX_LENGTH}",
        f"generation.max_new_tokens={MAX_NEW_TOKENS}", f"generation.max_prompt_length={MAX_PROMPT_TOKENS}",
        "train.learning_rate=2e-3", "rl.ppo_epochs=4", *overrides])


def _alignkit(stage: str, config: Path, overrides: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "alignkit.cli", stage, "--config", str(config)]
    subprocess.run(command + [arg for o in overrides for arg in ("--set", o)], env=env, check=True)


def plot(out: Path, betas: list[float], gold_spec: str) -> None:
    """Each run's training-curve diagnostics (proxy and gold against √KL, Gao fits, observed peaks) to
    ``summary.json`` and its figure to ``overoptimisation-beta-B.png``; proxy, gold and √KL of every run
    per iteration, side by side, to ``overoptimisation-by-iteration.png``."""
    summary = {}
    gold_name = "VADER" if gold_spec == "vader" else Path(gold_spec).name
    titles = ("proxy reward (optimised)", f"gold reward ({gold_name}, monitored)", "√KL(π ‖ π_ref) per reply")
    by_iteration = {title: {} for title in titles}
    for beta in betas:
        run = out / f"ppo-beta-{beta:g}"
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        summary[f"beta={beta:g}"] = curves = rl_curve_diagnostics(rows)
        proxy, gold_curve = curves["rewards"]["reward"], curves["rewards"][gold_monitor(gold_spec)[1]]
        _write_png(out / f"overoptimisation-beta-{beta:g}.png",
                   gao_plot(curves["sqrt_kl"], {"proxy": proxy, "gold": gold_curve}))
        for series, values in zip(by_iteration.values(), (proxy["values"], gold_curve["values"], curves["sqrt_kl"]),
                                  strict=True):
            series[f"β = {beta:g}"] = (curves["steps"], values)
    _write_png(out / "overoptimisation-by-iteration.png", line_panels(list(by_iteration.items()), "iteration"))
    atomic_write_json(out / "summary.json", summary)
    for name, curves in summary.items():
        for key, curve in curves["rewards"].items():
            print(name, key, "start", round(curve["values"][0], 3), "peak", curve["observed_peak"],
                  "fit", curve["fit"])


def _write_png(path: Path, encoded: str) -> None:
    atomic_write_bytes(path, base64.b64decode(encoded))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["rankings", "proxy", "ppo", "plot", "all"])
    parser.add_argument("--out", default="runs/overopt", help="Folder for every step's output.")
    parser.add_argument("--prompts", type=int, default=400, help="Prompts to sample the proxy's rankings from.")
    parser.add_argument("--samples", type=int, default=4, help="Replies ranked per prompt.")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.0], help="Fixed KL coefficients to run.")
    parser.add_argument("--iterations", type=int, default=40, help="PPO iterations per run.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gold", default="vader", help="vader, or a reward-model folder as the gold reward.")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value for the PPO runs.")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gold_file = out / "gold.txt"
    if gold_file.is_file() and gold_file.read_text().strip() != args.gold:
        parser.error(f"{out} was built with --gold {gold_file.read_text().strip()}, not {args.gold}: use another --out")
    atomic_write_text(gold_file, args.gold + "\n")
    steps = ["rankings", "proxy", "ppo", "plot"] if args.step == "all" else [args.step]
    if "rankings" in steps and not (out / "rankings.jsonl").exists():
        make_rankings(out, args.prompts, args.samples, args.seed, args.gold)
    if "proxy" in steps and not (out / "proxy" / "model").exists():
        train_proxy(out)
    if "ppo" in steps:
        for beta in args.betas:
            if not (out / f"ppo-beta-{beta:g}" / "model").exists():
                run_ppo(out, beta, args.iterations, args.gold, args.overrides)
    if "plot" in steps:
        plot(out, args.betas, args.gold)


if __name__ == "__main__":
    main()
