"""Reward over-optimisation on a task whose true reward is known (Gao et al. 2022), end to end on the CPU.

The gold reward is a transparent rule: the VADER lexicon's compound sentiment of the reply, in [-1, 1]
(Hutto & Gilbert 2014; the PyPI package ``vaderSentiment``). The policy never sees it:

1. ``pairs``: the start policy samples two replies to each of ``--pairs`` HH-RLHF harmless prompts; gold
   picks the chosen one (exact ties are dropped). Written to ``OUT/pairs.jsonl``.
2. ``proxy``: a small proxy reward model is trained on those labels with ``alignkit rm`` (``OUT/proxy``).
3. ``ppo``: PPO optimises the proxy, once per ``--betas`` value (fixed KL coefficient, ``OUT/ppo-beta-B``);
   gold is logged as a monitor (``rl.monitors``), never optimised.
4. ``plot``: gold and proxy reward of each iteration's rollouts against √KL(π ‖ π_ref), with the Gao et al.
   RL form fitted and the observed gold peak (5-iteration moving mean) marked, to ``OUT/overoptimisation.png``;
   the figures to ``OUT/summary.json``.

    pip install -e '.[bench]'
    python benchmarks/overoptimisation.py all --out runs/overopt

Each step skips what an earlier invocation finished; ``--set key=value`` overrides the PPO runs' config.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import torch
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from alignkit.config import GenerationConfig
from alignkit.data.sources import load_records
from alignkit.evaluate.overoptimisation import fit_gao, gao_curve, observed_peak
from alignkit.io import atomic_write_json, atomic_write_text
from alignkit.rl.generation import load_policy_generator, prompt_token_rows

HERE = Path(__file__).resolve().parent
BASE_CONFIG = HERE.parent / "configs" / "ppo-smollm2-hh.yaml"
RM_CONFIG = HERE.parent / "configs" / "rm-smollm2-hh.yaml"
MAX_NEW_TOKENS, MAX_PROMPT_TOKENS = 24, 64
_VADER = SentimentIntensityAnalyzer()


def gold(prompts, completions) -> list[float]:
    """The true reward: VADER compound sentiment of each reply (``rl.monitors`` / reward-function form)."""
    return [_VADER.polarity_scores(c.text)["compound"] for c in completions]


def make_pairs(out: Path, num_prompts: int, seed: int) -> None:
    """Two sampled replies per prompt from the start policy, the one gold scores higher as chosen."""
    records = load_records("hh-rlhf-harmless", "prompt", on_error="skip").records
    order = torch.randperm(len(records), generator=torch.Generator().manual_seed(seed)).tolist()
    prompts = [records[i].prompt for i in order[:num_prompts]]
    generator = load_policy_generator("smollm2-135m")
    rows = prompt_token_rows(prompts, generator.tokenizer, MAX_PROMPT_TOKENS)
    config = GenerationConfig(max_new_tokens=MAX_NEW_TOKENS, temperature=1.0, seed=seed, batch_size=64,
                              max_prompt_length=MAX_PROMPT_TOKENS)
    completions = generator.generate_ids([row for row in rows for _ in range(2)], config)
    scores = gold(None, completions)
    lines = []
    for i, prompt in enumerate(prompts):
        (a, score_a), (b, score_b) = zip(completions[2 * i : 2 * i + 2], scores[2 * i : 2 * i + 2], strict=True)
        if score_a != score_b:
            chosen, rejected = (a, b) if score_a > score_b else (b, a)
            lines.append(json.dumps({"prompt": list(prompt), "chosen": chosen.text, "rejected": rejected.text}) + "\n")
    atomic_write_text(out / "pairs.jsonl", "".join(lines))
    print(f"pairs: {len(lines)} of {len(prompts)} prompts had replies gold tells apart")


def train_proxy(out: Path) -> None:
    """``alignkit rm`` on the gold-labelled pairs: the CPU recipe of configs/rm-smollm2-hh.yaml with 3 epochs
    at 5e-4 (on 295 pairs it is still within noise of chance on held-out pairs: see benchmarks/RESULTS.md)."""
    _alignkit("rm", RM_CONFIG, [f"output_dir={out / 'proxy'}", f"data.train={out / 'pairs.jsonl'}",
                                "data.max_examples=null", "data.max_eval_examples=null", "data.max_length=96",
                                "train.epochs=3", "train.learning_rate=5e-4"])


def run_ppo(out: Path, beta: float, iterations: int, overrides: list[str]) -> None:
    """PPO against the proxy with a fixed KL coefficient ``beta``, gold logged as a monitor."""
    _alignkit("rl", BASE_CONFIG, [
        f"output_dir={out / f'ppo-beta-{beta:g}'}", f"reward.path={out / 'proxy'}", "reward.max_length=96",
        f"rl.kl_coef={beta}", "rl.kl_target=null", "rl.critic=head", "rl.unfinished_penalty=0",
        f"rl.iterations={iterations}", "rl.eval_prompts=0", "rl.monitors=[overoptimisation:gold]",
        f"generation.max_new_tokens={MAX_NEW_TOKENS}", f"generation.max_prompt_length={MAX_PROMPT_TOKENS}",
        "train.learning_rate=3e-4", *overrides])


def _alignkit(stage: str, config: Path, overrides: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "alignkit.cli", stage, "--config", str(config)]
    subprocess.run(command + [arg for o in overrides for arg in ("--set", o)], env=env, check=True)


def curves(run: Path) -> list[dict]:
    """Per iteration of a run: proxy reward, gold reward and √KL of its rollouts."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{"iteration": i, "proxy": r["reward"], "gold": r["monitor_gold"], "kl": r["kl"],
             "sqrt_kl": math.sqrt(max(r["kl"], 0.0))}
            for i, r in enumerate(r for r in rows if "monitor_gold" in r)]


def plot(out: Path, betas: list[float]) -> None:
    """Gold and proxy reward (change from iteration 0) against √KL, one panel per β, with the Gao et al.
    RL form d(α − β log d) fitted to each and the observed gold peak marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(betas), figsize=(5.5 * len(betas), 4.2), squeeze=False)
    summary = {}
    for ax, beta in zip(axes[0], betas, strict=True):
        points = curves(out / f"ppo-beta-{beta:g}")
        d = [p["sqrt_kl"] for p in points]
        summary[f"beta={beta:g}"] = row = {"iterations": len(points), "sqrt_kl_end": sum(d[-3:]) / 3}
        for key, colour in (("proxy", "tab:blue"), ("gold", "tab:orange")):
            gain = [p[key] - points[0][key] for p in points]
            ax.plot(d, gain, "o", markersize=3, color=colour, alpha=0.6, label=f"{key} (per iteration)")
            fit = fit_gao(d, gain, "rl")
            grid = torch.linspace(min(x for x in d if x > 0), max(d), 100)
            ax.plot(grid, gao_curve(grid, fit.alpha, fit.beta, "rl"), color=colour,
                    label=f"{key} fit d(α − β log d): α={fit.alpha:.3f}, β={fit.beta:.3f}")
            peak = observed_peak(d, gain, window=5)
            row[key] = {"start": points[0][key], "end": sum(p[key] for p in points[-3:]) / 3,
                        "peak_gain": peak.reward, "peak_sqrt_kl": peak.d, "peak_iteration": peak.index,
                        "fit_alpha": fit.alpha, "fit_beta": fit.beta, "fit_peak_sqrt_kl": fit.peak_d}
        gold_peak = row["gold"]
        ax.axvline(gold_peak["peak_sqrt_kl"], color="tab:orange", linestyle=":", linewidth=1)
        ax.axhline(0, color="grey", linewidth=0.5)
        ax.set(title=f"PPO against the proxy, β = {beta:g}", xlabel="√KL(π ‖ π_ref), nats^½ per reply",
               ylabel="reward − reward at iteration 0")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "overoptimisation.png", dpi=120)
    atomic_write_json(out / "summary.json", summary)
    print(json.dumps(summary, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=["pairs", "proxy", "ppo", "plot", "all"])
    parser.add_argument("--out", default="runs/overopt", help="Folder for every step's output.")
    parser.add_argument("--pairs", type=int, default=320, help="Prompts to sample the proxy's training pairs from.")
    parser.add_argument("--betas", type=float, nargs="+", default=[0.1, 0.0], help="Fixed KL coefficients to run.")
    parser.add_argument("--iterations", type=int, default=30, help="PPO iterations per run.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="key=value for the PPO runs.")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = ["pairs", "proxy", "ppo", "plot"] if args.step == "all" else [args.step]
    if "pairs" in steps and not (out / "pairs.jsonl").exists():
        make_pairs(out, args.pairs, args.seed)
    if "proxy" in steps and not (out / "proxy" / "model").exists():
        train_proxy(out)
    if "ppo" in steps:
        for beta in args.betas:
            if not (out / f"ppo-beta-{beta:g}" / "model").exists():
                run_ppo(out, beta, args.iterations, args.overrides)
    if "plot" in steps:
        plot(out, args.betas)


if __name__ == "__main__":
    main()
