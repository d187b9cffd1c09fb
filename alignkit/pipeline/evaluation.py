"""The pipeline's last stage: ``alignkit eval rm`` on the reward model and on the judge, then ``alignkit
eval hacking`` of each policy (ppo, dpo) against the SFT policy judged by the judge (the win rate, the
length and style diagnostics, and with ``eval.red_team`` the red-team and over-refusal figures), on the
first ``eval.num_prompts`` distinct prompts of the reward model's held-out split, and last the report of
every stage. The judge is output_dir/judge, a reward model trained on pairs the reward model PPO
optimised never saw; when the pipeline has no finished judge, the reward model itself judges, and
eval.json says the win rates are not independent. The judge reads at most ``judge.data.max_length``
tokens, the length it was trained on.

Writes output_dir/eval/: ``config.yaml`` (the eval section), ``<policy>-vs-sft/`` (``hacking.json`` and
``samples.jsonl``, as ``alignkit eval hacking --out`` writes them), ``eval.json``:
``{"rm_eval": {...}, "judge": path, "judge_is_independent": bool, "judge_eval": {...}, "winrate": {policy:
{...}}}`` (each win rate as ``alignkit eval winrate`` reports it), and ``report.html`` with ``report.md``
(``alignkit eval report`` of the stage folders and eval/). Each reward model's report is also merged into
its own eval.json under ``rm_eval``, as ``alignkit eval rm`` does. Resuming, a comparison whose
``hacking.json`` is already written is read back, not sampled again.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from alignkit.config import GenerationConfig, to_dict
from alignkit.console import console
from alignkit.evaluate.hacking import evaluate_hacking, load_prompt_set, print_hacking
from alignkit.evaluate.report import write_html_report
from alignkit.evaluate.reward_eval import evaluate_reward_model, write_report
from alignkit.evaluate.winrate import winrate_prompts
from alignkit.io import atomic_write_json, atomic_write_text
from alignkit.pipeline.config import PipelineConfig, PipelineEvalConfig
from alignkit.pipeline.folders import training_finished

POLICIES = ("ppo", "dpo")
BASELINE = "sft"


def run_evaluation(config: PipelineConfig, policies: list[str], *, resume: bool) -> dict:
    """Evaluate the reward model output_dir/rm and each of ``policies`` (stage names) against the SFT policy;
    write output_dir/eval and return its eval.json."""
    root, settings = Path(config.output_dir), config.eval
    out, reward_model = root / "eval", root / "rm"
    atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(settings), sort_keys=False))
    rm_report = evaluate_reward_model(str(reward_model), max_length=config.rm.data.max_length)
    write_report(reward_model, rm_report)
    report = {"rm_eval": rm_report, **pick_judge(config)}
    judge = Path(report["judge"])
    max_length = (config.judge if report["judge_is_independent"] else config.rm).data.max_length
    if report["judge_is_independent"]:
        report["judge_eval"] = evaluate_reward_model(str(judge), max_length=max_length)
        write_report(judge, report["judge_eval"])
    prompts = winrate_prompts(reward_model, None, settings.num_prompts)
    if len(prompts) < settings.num_prompts:
        console.print(f"[yellow]eval: the held-out split of {reward_model} has {len(prompts)} distinct prompts, "
                      f"fewer than eval.num_prompts ({settings.num_prompts}); rm.data.max_eval_examples caps it")
    probes = _probe_sets(settings)
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
                                       part, judge_max_length=max_length, **probes)
        print_hacking(hacking, part)
        winrates[policy] = _win_rate_report(hacking)
    report["winrate"] = winrates
    atomic_write_json(out / "eval.json", report)
    stages = [root / stage for stage in (BASELINE, "rm", "judge", *POLICIES)
              if (root / stage / "metrics.jsonl").is_file()]
    write_html_report([*stages, out], out / "report.html")
    return report


def pick_judge(config: PipelineConfig) -> dict:
    """The judge of the win rates: output_dir/judge when that stage has finished, else the reward model PPO
    optimised, which then judges its own policy (said on the console and in eval.json)."""
    root = Path(config.output_dir)
    if training_finished(root / "judge"):
        return {"judge": str(root / "judge"), "judge_is_independent": True}
    console.print(f"[yellow]eval: no finished judge in {root / 'judge'}: the win rates are judged by {root / 'rm'}, "
                  "the reward model PPO optimised, so they are not independent; add the judge stage")
    return {"judge": str(root / "rm"), "judge_is_independent": False}


def _probe_sets(settings: PipelineEvalConfig) -> dict:
    """The red-team and ordinary prompts eval hacking asks, as its keyword arguments."""
    if settings.red_team is None:
        return {}
    benign = load_prompt_set(settings.benign, "eval.benign", settings.max_red_team) if settings.benign else None
    return {"red_team": load_prompt_set(settings.red_team, "eval.red_team", settings.max_red_team), "benign": benign}


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
    judged = "" if report.get("judge_is_independent", True) else " (judged by the rm itself)"
    words = [f"win rate over {BASELINE}{judged}: {', '.join(parts)}"] if parts else []
    if "rm_eval" in report:
        words.append(f"rm accuracy {report['rm_eval']['accuracy']:.2f}")
    return "; ".join(words) or "-"
