"""The pipeline's last stage: ``alignkit eval rm`` on the reward model, then the win rate of each policy
(ppo, dpo) over the SFT policy judged by the reward model, on the first ``eval.num_prompts`` distinct
prompts of the reward model's held-out split. The judge reads at most ``rm.data.max_length`` tokens, the
length it was trained on.

Writes output_dir/eval/: ``config.yaml`` (the eval section), ``<policy>-vs-sft/`` (``winrate.json`` and
``samples.jsonl``, as ``alignkit eval winrate --out`` writes them) and, last, ``eval.json``:
``{"rm_eval": {...}, "winrate": {policy: {...}}}``. The reward model's report is also merged into
output_dir/rm/eval.json under ``rm_eval``, as ``alignkit eval rm`` does. Resuming, a comparison whose
``winrate.json`` is already written is read back, not sampled again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from alignkit.config import GenerationConfig, to_dict
from alignkit.evaluate.reward_eval import evaluate_reward_model, write_report
from alignkit.evaluate.winrate import evaluate_winrate, print_report, winrate_prompts
from alignkit.io import atomic_write_json, atomic_write_text
from alignkit.pipeline.config import PipelineConfig
from alignkit.train.reporting import console

POLICIES = ("ppo", "dpo")
BASELINE = "sft"


def run_evaluation(config: PipelineConfig, policies: list[str], *, resume: bool) -> dict:
    """Evaluate the reward model output_dir/rm and each of ``policies`` (stage names) against the SFT policy;
    write output_dir/eval and return its eval.json."""
    root, settings = Path(config.output_dir), config.eval
    out, judge = root / "eval", root / "rm"
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(settings), sort_keys=False))
    max_length = config.rm.data.max_length
    rm_report = evaluate_reward_model(str(judge), max_length=max_length)
    write_report(judge, rm_report)
    prompts = winrate_prompts(judge, None, settings.num_prompts)
    if len(prompts) < settings.num_prompts:
        console.print(f"[yellow]eval: the held-out split of {judge} has {len(prompts)} distinct prompts, fewer than "
                      f"eval.num_prompts ({settings.num_prompts}); rm.data.max_eval_examples caps it")
    generation = dataclasses.replace(GenerationConfig(), max_new_tokens=settings.max_new_tokens,
                                     temperature=settings.temperature, seed=settings.seed)
    winrates = {}
    for policy in policies:
        part = out / f"{policy}-vs-{BASELINE}"
        if resume and (part / "winrate.json").is_file():
            winrates[policy] = json.loads((part / "winrate.json").read_text())
            console.print(f"eval: {part / 'winrate.json'} was written before; reused")
        else:
            winrates[policy] = evaluate_winrate(str(root / policy), str(root / BASELINE), str(judge), prompts,
                                                generation, part, judge_max_length=max_length)
        print_report(winrates[policy], part)
    report = {"rm_eval": rm_report, "winrate": winrates}
    atomic_write_json(out / "eval.json", report)
    return report


def summarise_evaluation(report: dict) -> str:
    """The win rates and the reward model's accuracy of an eval.json, in a few words."""
    parts = [f"{policy} {r['win_rate']:.2f}" for policy, r in report.get("winrate", {}).items()]
    words = [f"win rate over {BASELINE}: {', '.join(parts)}"] if parts else []
    if "rm_eval" in report:
        words.append(f"rm accuracy {report['rm_eval']['accuracy']:.2f}")
    return "; ".join(words) or "-"
