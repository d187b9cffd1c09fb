"""The pipeline's last stage: ``alignkit eval rm`` on the reward model, then ``alignkit eval hacking`` of
each policy (ppo, dpo) against the SFT policy judged by the reward model (the win rate, the length and
style diagnostics), on the first ``eval.num_prompts`` distinct prompts of the reward model's held-out
split, and last the report of every stage. The judge reads at most ``rm.data.max_length`` tokens, the
length it was trained on.

Writes output_dir/eval/: ``config.yaml`` (the eval section), ``<policy>-vs-sft/`` (``hacking.json`` and
``samples.jsonl``, as ``alignkit eval hacking --out`` writes them), ``eval.json``:
``{"rm_eval": {...}, "winrate": {policy: {...}}}`` (each win rate as ``alignkit eval winrate`` reports
it), and ``report.html`` with ``report.md`` (``alignkit eval report`` of the stage folders and eval/).
The reward model's report is also merged into output_dir/rm/eval.json under ``rm_eval``, as ``alignkit
eval rm`` does. Resuming, a comparison whose ``hacking.json`` is already written is read back, not
sampled again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from alignkit.config import GenerationConfig, to_dict
from alignkit.console import console
from alignkit.evaluate.hacking import evaluate_hacking, print_hacking
from alignkit.evaluate.report import write_html_report
from alignkit.evaluate.reward_eval import evaluate_reward_model, write_report
from alignkit.evaluate.winrate import winrate_prompts
from alignkit.io import atomic_write_json, atomic_write_text
from alignkit.pipeline.config import PipelineConfig

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
                                     temperature=settings.temperature, seed=settings.seed,
                                     batch_size=settings.batch_size, max_prompt_length=settings.max_prompt_length)
    winrates = {}
    for policy in policies:
        part = out / f"{policy}-vs-{BASELINE}"
        if resume and (part / "hacking.json").is_file():
            hacking = json.loads((part / "hacking.json").read_text())
            console.print(f"eval: {part / 'hacking.json'} was written before; reused")
        else:
            hacking = evaluate_hacking(str(root / policy), str(root / BASELINE), str(judge), prompts, generation,
                                       part, judge_max_length=max_length)
        print_hacking(hacking, part)
        winrates[policy] = _win_rate_report(hacking)
    report = {"rm_eval": rm_report, "winrate": winrates}
    atomic_write_json(out / "eval.json", report)
    stages = [root / stage for stage in (BASELINE, "rm", *POLICIES) if (root / stage / "metrics.jsonl").is_file()]
    write_html_report([*stages, out], out / "report.html")
    return report


def _win_rate_report(hacking: dict) -> dict:
    """The win rate of a hacking report with the keys of ``alignkit eval winrate``'s report."""
    result = hacking["win_rate"]
    return {"policy": hacking["policy"], "baseline": hacking["baseline"], "judge": hacking["judge"],
            "num_prompts": hacking["num_prompts"], "win_rate": result["rate"], "ci_low": result["ci_low"],
            "ci_high": result["ci_high"], "wins": result["wins"], "losses": result["losses"], "ties": result["ties"],
            **hacking["sides"]}


def summarise_evaluation(report: dict) -> str:
    """The win rates and the reward model's accuracy of an eval.json, in a few words."""
    parts = [f"{policy} {r['win_rate']:.2f}" for policy, r in report.get("winrate", {}).items()]
    words = [f"win rate over {BASELINE}: {', '.join(parts)}"] if parts else []
    if "rm_eval" in report:
        words.append(f"rm accuracy {report['rm_eval']['accuracy']:.2f}")
    return "; ".join(words) or "-"
