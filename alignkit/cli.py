"""The ``alignkit`` command: one subcommand per stage.

    alignkit pipeline --config configs/quickstart.yaml
    alignkit sft --config configs/sft-smollm2-alpaca.yaml --set train.max_steps=10
    alignkit rm --config configs/rm-smollm2-hh.yaml
    alignkit dpo --config configs/dpo-smollm2-hh.yaml --set preference.loss=ipo
    alignkit rl --config configs/ppo-smollm2-hh.yaml --set rl.algo=grpo
    alignkit eval rm --model runs/rm
    alignkit eval hacking --policy runs/ppo --baseline runs/sft --judge runs/rm --probes probes.jsonl
    alignkit eval best-of-n --policy runs/sft --judge runs/rm --gold runs/rm-gold --n 1,2,4,8,16
    alignkit eval report runs/sft runs/rm runs/ppo --out report.html
    alignkit cai label --config configs/cai-label-smollm2-hh.yaml
    alignkit sft --help          # every option, its type, default and meaning

A problem the user can fix (bad config key, malformed data line, diverged training) is printed as
one line naming where it is, and the command exits with status 2.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass

from alignkit.config import DPOConfig, PRMConfig, RLConfig, RMConfig, SFTConfig, describe, load_config
from alignkit.errors import AlignkitError


@dataclass(frozen=True)
class Stage:
    config: type
    run: Callable
    summary: str


def _run_sft(config: SFTConfig, resume: bool) -> None:
    from alignkit.train.sft import run_sft

    run_sft(config, resume=resume)


def _run_rm(config: RMConfig, resume: bool) -> None:
    from alignkit.train.reward import run_rm

    run_rm(config, resume=resume)


def _run_dpo(config: DPOConfig, resume: bool) -> None:
    from alignkit.train.preference import run_dpo

    run_dpo(config, resume=resume)


def _run_prm(config: PRMConfig, resume: bool) -> None:
    from alignkit.train.prm import run_prm

    run_prm(config, resume=resume)


def _run_rl(config: RLConfig, resume: bool) -> None:
    from alignkit.train.rl import run_rl

    run_rl(config, resume=resume)


STAGES = {
    "sft": Stage(SFTConfig, _run_sft, "Supervised fine-tuning on demonstrations (stage 1 of RLHF)."),
    "rm": Stage(RMConfig, _run_rm, "A reward model from human comparisons or rankings (stage 2 of RLHF)."),
    "dpo": Stage(DPOConfig, _run_dpo, "Preference optimisation without a reward model: DPO, cDPO, IPO, hinge, "
                 "KTO, ORPO, SimPO."),
    "prm": Stage(PRMConfig, _run_prm, "A process reward model from step-labelled solutions: P(step k is right) "
                 "at each step's last token."),
    "rl": Stage(RLConfig, _run_rl, "Online RL against a reward with a KL penalty to the reference: PPO, GRPO, RLOO "
                "(stage 3 of RLHF)."),
}


def _add_prm_label_command(prm) -> None:
    actions = prm.add_subparsers(dest="prm_action", metavar="ACTION")
    label = actions.add_parser(
        "label",
        help="Step labels from rollouts (Math-Shepherd): does the policy still reach the answer from each step?",
        description="For each step of each solution, samples --samples completions from the prompt and the steps "
        "so far and checks their final answers; a step's hard label is 1 when any completion is right, its soft "
        "label the share that are; with --judge, an AI judge's P(yes) of each step too. Appends one solution per "
        "line to --out (rerun to continue) and reports the agreement with the source's own labels when it has them.",
    )
    label.add_argument("--policy", required=True, help="The model (or run folder) that completes the solutions.")
    label.add_argument("--data", required=True, help="Step-by-step solutions with answers (any source of steps).")
    label.add_argument("--out", required=True, help="Output .jsonl (appended to: a rerun continues).")
    label.add_argument("--samples", type=int, default=8, help="Completions per step (default 8).")
    label.add_argument("--labels", choices=["hard", "soft", "judge", "consensus"], default="hard",
                       help="What goes under 'labels': the rollouts' hard or soft labels, the judge's P(yes), or the "
                       "hard labels of the steps where the judge agrees (the others unlabelled).")
    label.add_argument("--judge", metavar="MODEL", help="Also label each step by an AI judge (a feedback model: a "
                       "model name or folder, or with --judge-backend openai the endpoint's model), asked whether "
                       "the step is correct; written as judge_labels, P(yes).")
    label.add_argument("--judge-backend", choices=["hf", "openai"], default="hf",
                       help="hf: a local model (default). openai: an OpenAI-compatible endpoint (OPENAI_BASE_URL).")
    label.add_argument("--num-solutions", type=int, help="Label only the first N solutions.")
    _add_generation_arguments(label, max_new_tokens=64, temperature=1.0)


def _run_prm_label(args) -> None:
    from pathlib import Path

    from alignkit.console import console, summary_table
    from alignkit.evaluate.process_eval import label_agreement
    from alignkit.feedback.rollout_labels import label_solutions
    from alignkit.rl.generation import load_policy_generator

    generation = _generation_config(args)
    generator = load_policy_generator(args.policy)
    judge = None
    if args.judge:
        from alignkit.feedback.backends import build_backend
        from alignkit.feedback.config import FeedbackModelConfig

        judge = build_backend(FeedbackModelConfig(backend=args.judge_backend, model=args.judge), Path(args.out).parent)
    out = label_solutions(generator, generator.tokenizer, args.data, Path(args.out), samples=args.samples,
                          generation=generation, labels=args.labels, limit=args.num_solutions, judge=judge)
    console.print(summary_table(f"step labels from rollouts: {out}", {
        k: v for k, v in label_agreement(out).items() if isinstance(v, (int, float))}))


def _add_eval_commands(commands) -> None:
    evaluate = commands.add_parser("eval", help="Evaluate a trained model.")
    kinds = evaluate.add_subparsers(dest="eval_kind", required=True, metavar="KIND")
    rm = kinds.add_parser(
        "rm",
        help="Reward model: held-out accuracy, calibration (ECE) and length-bias diagnostics.",
        description="Scores the chosen and rejected response of every pair; prints a table and adds the "
        "results under 'rm_eval' to the run's eval.json.",
    )
    rm.add_argument("--model", required=True, help="A reward-model run folder, model folder or ensemble run folder.")
    rm.add_argument("--data", help="Preference pairs (any data source); default: the run's own held-out split.")
    rm.add_argument("--split-from", help="Use the held-out split of this run folder instead of the model's own.")
    rm.add_argument("--combine", default="mean", choices=["mean", "min", "mean_minus_std"],
                    help="How an ensemble's members are combined (default: mean).")
    rm.add_argument("--lam", type=float, default=1.0, help="λ of mean_minus_std (default: 1.0).")
    rm.add_argument("--max-length", type=int, default=1024, help="Longest scored sequence in tokens.")
    rm.add_argument("--batch-size", type=int, default=8, help="Sequences per forward pass.")
    prm = kinds.add_parser(
        "prm",
        help="Process reward model: step accuracy and F1 against step labels, and ProcessBench's metric.",
        description="Scores every step of every labelled solution; a step is predicted right when its probability "
        "is at least --threshold. Reports step accuracy, the F1 of finding wrong steps, the wrong-step AUROC, and "
        "ProcessBench's accuracies on erroneous and correct solutions with their harmonic mean, and adds them "
        "under 'prm_eval' to the run's eval.json.",
    )
    prm.add_argument("--model", required=True, help="A process-reward-model run folder or model folder.")
    prm.add_argument("--data", help="Step-labelled solutions (any data source); default: the run's held-out split.")
    prm.add_argument("--threshold", type=float, default=0.5, help="Probability from which a step counts as right.")
    prm.add_argument("--max-length", type=int, default=1024, help="Longest scored sequence in tokens.")
    prm.add_argument("--batch-size", type=int, default=8, help="Solutions per forward pass.")
    winrate = kinds.add_parser(
        "winrate",
        help="Win rate of a policy over a baseline policy, judged by a reward model or an AI judge.",
        description="Samples one reply per prompt from each policy, scores both with the judge and reports how "
        "often the policy's reply scores higher (ties count half), with a 95% interval (Wilson's with continuity "
        "correction). An AI judge (--ai-judge) is a feedback model asked which reply is better under a principle of "
        "--constitution, in both orders (position bias averaged out); the policy wins where P(its reply "
        "better) > 1/2. Writes winrate.json and samples.jsonl to --out.",
    )
    _add_sampling_arguments(winrate, baseline=True, ai_judge=True)
    winrate.add_argument("--out", help="Output folder (default: <policy>/winrate-vs-<baseline folder name>).")
    accuracy = kinds.add_parser(
        "gsm8k",
        help="Accuracy of a policy on maths problems with a known final answer (GSM8K's checker).",
        description="Generates one reply per problem and checks its final number against the reference answer; "
        "reports the accuracy with a 95% Wilson interval. Writes accuracy.json and samples.jsonl to --out.",
    )
    _add_problem_arguments(accuracy)
    _add_generation_arguments(accuracy, max_new_tokens=256, temperature=0.0)
    accuracy.add_argument("--out", help="Output folder (default: <policy>/accuracy, or runs/accuracy-<name>).")
    hacking = kinds.add_parser(
        "hacking",
        help="Reward-hacking diagnostics of a policy against its baseline: length, style, sycophancy, red team, "
        "training curves.",
        description="Samples one reply per held-out prompt from policy and baseline (before and after), scores "
        "both with the judge and reports the win rate, reward-length correlations, the length-bucket gain, the "
        "length-matched win rate and the style drift; for an RL run folder also the training curves (length, "
        "reward-length correlation, proxy and monitored rewards against sqrt(KL) with the Gao et al. fit). "
        "Writes hacking.json and the samples to --out.",
    )
    _add_sampling_arguments(hacking, baseline=True)
    _add_probe_arguments(hacking)
    _add_ai_judge_arguments(hacking, hacking)
    hacking.add_argument("--out", help="Output folder (default: <policy>/hacking-vs-<baseline folder name>).")
    best_of_n = kinds.add_parser(
        "best-of-n",
        help="Best-of-n sampling as a baseline policy: expected judge (proxy) and gold reward of the best of n "
        "against KL.",
        description="Samples max(n) replies per prompt from the policy, scores every reply with the judge (and "
        "with --gold, an independent reward model: the over-optimisation check) and reports, for each n, "
        "KL_bon(n) = log n - (n-1)/n, its square root, and unbiased estimates from the max(n) samples of the "
        "judge's reward of the best of n and the gold reward of that reply. Writes best_of_n.json and "
        "samples.jsonl to --out.",
    )
    _add_sampling_arguments(best_of_n, baseline=False)
    best_of_n.add_argument("--gold", help="A second, independent reward-model run, model or ensemble folder that "
                           "scores the reply the judge picks.")
    best_of_n.add_argument("--n", default="1,2,4,8,16", help="The n values, comma-separated (default: 1,2,4,8,16); "
                           "max(n) replies are sampled per prompt.")
    best_of_n.add_argument("--out", help="Output folder (default: <policy>/best-of-n-<judge folder name>).")
    answers = kinds.add_parser(
        "best-of-n-answers",
        help="Best-of-n on problems with a checked answer: accuracy against n of choosing by a process reward "
        "model, an outcome reward model or majority vote, with pass@n as the ceiling.",
        description="Samples max(n) solutions per problem, checks each final answer (GSM8K's checker) and "
        "reports, for each n, exact estimates from those samples of how often the best of n is right when chosen "
        "by --prm (its step probabilities aggregated over the solution's lines), by --orm (a reward model) or by "
        "majority vote over final answers, beside pass@n, each with a 95% bootstrap interval over problems. "
        "Writes best_of_n_answers.json and samples.jsonl to --out.",
    )
    _add_problem_arguments(answers)
    answers.add_argument("--prm", help="A process-reward-model run or model folder (alignkit prm).")
    answers.add_argument("--prm-aggregation", choices=["min", "product", "last", "mean"], default="min",
                         help="How a solution's step probabilities become its score (default: min).")
    answers.add_argument("--orm", help="An outcome reward model: an alignkit rm run, model or ensemble folder.")
    answers.add_argument("--n", default="1,2,4,8,16", help="The n values, comma-separated (default: 1,2,4,8,16); "
                         "max(n) solutions are sampled per problem.")
    answers.add_argument("--score-batch-size", type=int, default=8, help="Solutions per scoring forward pass.")
    answers.add_argument("--max-length", type=int, default=1024, help="Longest scored sequence in tokens.")
    _add_generation_arguments(answers, max_new_tokens=128, temperature=0.7)
    answers.add_argument("--out", help="Output folder (default: <policy>/best-of-n-answers, or "
                         "runs/best-of-n-answers-<name>).")
    report = kinds.add_parser(
        "report",
        help="One self-contained HTML report (plots included) of one or more run folders, and a Markdown summary.",
        description="Training curves, eval.json before and after, samples side by side, win rates with intervals "
        "and reward-hacking diagnostics of each run folder (evaluations are read from its subfolders). Prints a "
        "Markdown summary and writes it beside the HTML file as .md.",
    )
    report.add_argument("runs", nargs="+", metavar="RUN_DIR", help="Run folders (each with a metrics.jsonl).")
    report.add_argument("--out", default="report.html", help="The HTML file to write (default: report.html).")


def _add_problem_arguments(parser) -> None:
    """The policy and the problems with known answers it is checked on."""
    parser.add_argument("--policy", required=True, help="The policy: a run folder, model folder or model name.")
    parser.add_argument("--split-from", help="Use the held-out split of this run folder (default: the policy's).")
    parser.add_argument("--data", help="Problems of this data source instead (e.g. gsm8k or a .jsonl of prompts "
                        "with answers).")
    parser.add_argument("--num-problems", type=int, default=200, help="Evaluate on the first N problems.")


def _problems(args):
    """The problems of :func:`_add_problem_arguments`, and whether the policy is a run folder."""
    from pathlib import Path

    from alignkit.evaluate.accuracy import accuracy_problems

    is_run = Path(args.policy, "config.yaml").is_file()
    return accuracy_problems(args.split_from or (args.policy if is_run and not args.data else None), args.data,
                             args.num_problems), is_run


def _add_probe_arguments(hacking) -> None:
    """eval hacking's probe sets: sycophancy probes, red-team prompts and ordinary requests."""
    hacking.add_argument("--probes", metavar="FILE.jsonl", help="Sycophancy probes, one {prompt, wrong, correct} "
                         "per line: the share of replies agreeing with the user's false belief, before and after.")
    hacking.add_argument("--red-team", metavar="SOURCE", help="Adversarial prompts: a dataset name (advbench) or "
                         "a .jsonl with one {prompt} per line. Reports the harmful-reply rate of each side, "
                         "estimated (a heuristic) as the share of non-refusals; with --benign also the share the "
                         "judge scores below the baseline's median on the ordinary requests; with --ai-judge also "
                         "the AI judge's win rate of policy over baseline on these prompts.")
    hacking.add_argument("--benign", metavar="SOURCE", help="Ordinary, harmless requests: a dataset name "
                         "(alpaca-seed) or a .jsonl of prompts. Reports each side's over-refusal rate and share of "
                         "terse replies (non-answers), and sets the judge's threshold for --red-team.")
    hacking.add_argument("--max-red-team", type=int, metavar="N", help="Use the first N prompts of --red-team and "
                         "of --benign (default: all).")


def _add_sampling_arguments(parser, *, baseline: bool, ai_judge: bool = False) -> None:
    """The arguments of commands that sample a policy's replies to prompts (and with ``baseline`` a second
    policy's, to compare with) and score them with a reward-model judge (or, with ``ai_judge``, either that
    or a feedback model)."""
    parser.add_argument("--policy", required=True, help="The policy: a run folder or model folder.")
    if baseline:
        parser.add_argument("--baseline", required=True, help="The policy compared against: a run or model folder, "
                            "or any model name (e.g. smollm2-135m).")
    judges = parser.add_mutually_exclusive_group(required=True) if ai_judge else parser
    judges.add_argument("--judge", required=not ai_judge,
                        help="A reward-model run folder, model folder or ensemble folder.")
    if ai_judge:
        _add_ai_judge_arguments(parser, judges)
    parser.add_argument("--data", help="Prompts of these preference pairs (any data source); default: the "
                        "held-out split of the policy's run folder.")
    parser.add_argument("--num-prompts", type=int, default=100, help="Evaluate on the first N distinct prompts.")
    _add_generation_arguments(parser, max_new_tokens=128, temperature=0.7)
    parser.add_argument("--judge-max-length", type=int, default=1024,
                        help="Longest (prompt + reply) the judge scores, in tokens; longer prompts lose their oldest.")


def _add_ai_judge_arguments(parser, group) -> None:
    """--ai-judge (added to ``group``: the parser, or a group exclusive with --judge) and its settings."""
    group.add_argument("--ai-judge", metavar="MODEL", help="A feedback model as a judge: a model name or folder "
                       "(or run folder), or with --ai-judge-backend openai the endpoint's model name (base URL "
                       "from OPENAI_BASE_URL, key from OPENAI_API_KEY).")
    parser.add_argument("--ai-judge-backend", choices=["hf", "openai"], default="hf",
                        help="hf: a local model (default). openai: an OpenAI-compatible endpoint.")
    parser.add_argument("--ai-judge-api", choices=["completions", "chat"], default="completions",
                        help="openai: the endpoint's API (default: completions, options scored exactly).")
    parser.add_argument("--constitution", default="default", help="The AI judge's principles: default, "
                        "cai-paper, or a constitution file or folder (as alignkit cai takes).")


def _ai_judge(args):
    """The AIJudge that --ai-judge and its settings name, or None."""
    if not args.ai_judge:
        return None
    from alignkit.evaluate.ai_judge import AIJudge
    from alignkit.feedback.config import FeedbackModelConfig

    feedback = FeedbackModelConfig(backend=args.ai_judge_backend, model=args.ai_judge, api=args.ai_judge_api)
    return AIJudge(feedback, args.constitution, args.seed)


def _add_generation_arguments(parser, *, max_new_tokens: int, temperature: float) -> None:
    parser.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help="Longest reply in tokens.")
    parser.add_argument("--temperature", type=float, default=temperature, help="Sampling temperature; 0 is greedy.")
    parser.add_argument("--top-p", type=float, default=1.0, help="Nucleus sampling threshold (1: off).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the sampling.")
    parser.add_argument("--batch-size", type=int, default=16, help="Prompts per generate call.")


def _generation_config(args):
    """The GenerationConfig of the sampling arguments (:func:`_add_generation_arguments`)."""
    from alignkit.config import GenerationConfig

    flags = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "top_p": args.top_p,
             "seed": args.seed, "batch_size": args.batch_size}
    return load_config(GenerationConfig, None, [f"{key}={value}" for key, value in flags.items()])


def _run_eval(args) -> None:
    from pathlib import Path

    if args.eval_kind == "rm":
        from alignkit.evaluate.reward_eval import evaluate_reward_model, write_report

        report = evaluate_reward_model(args.model, args.data, split_from=args.split_from, combine=args.combine,
                                       lam=args.lam, max_length=args.max_length, batch_size=args.batch_size)
        write_report(Path(args.model), report)
        return
    if args.eval_kind == "prm":
        from alignkit.evaluate.process_eval import evaluate_process_reward_model, write_prm_report

        write_prm_report(Path(args.model), evaluate_process_reward_model(
            args.model, args.data, threshold=args.threshold, max_length=args.max_length, batch_size=args.batch_size))
        return
    if args.eval_kind == "report":
        from alignkit.evaluate.report import write_html_report

        print(write_html_report(args.runs, Path(args.out)))
        return
    generation = _generation_config(args)
    if args.eval_kind in ("gsm8k", "best-of-n-answers"):
        problems, is_run = _problems(args)
        name = "accuracy" if args.eval_kind == "gsm8k" else args.eval_kind
        out = Path(args.out) if args.out else (
            Path(args.policy) / name if is_run else Path("runs") / f"{name}-{Path(args.policy).name}")
        if args.eval_kind == "gsm8k":
            from alignkit.evaluate.accuracy import evaluate_accuracy, print_accuracy

            print_accuracy(evaluate_accuracy(args.policy, problems, generation, out), out)
            return
        from alignkit.evaluate.answer_best_of_n import evaluate_answer_best_of_n, print_answer_best_of_n
        from alignkit.evaluate.best_of_n_eval import parse_ns

        print_answer_best_of_n(evaluate_answer_best_of_n(
            args.policy, problems, generation, parse_ns(args.n), out, prm=args.prm,
            prm_aggregation=args.prm_aggregation, orm=args.orm, batch_size=args.score_batch_size,
            max_length=args.max_length), out)
        return
    from alignkit.evaluate.winrate import evaluate_winrate, print_report, winrate_prompts

    if args.eval_kind == "best-of-n":
        from alignkit.evaluate.best_of_n_eval import evaluate_best_of_n, parse_ns, print_best_of_n

        ns = parse_ns(args.n)
        out = Path(args.out) if args.out else Path(args.policy) / f"best-of-n-{Path(args.judge).name}"
        report = evaluate_best_of_n(args.policy, args.judge, winrate_prompts(args.policy, args.data, args.num_prompts),
                                    generation, ns, out, gold=args.gold, judge_max_length=args.judge_max_length)
        print_best_of_n(report, out)
        return
    prompts = winrate_prompts(args.policy, args.data, args.num_prompts)
    out = Path(args.out) if args.out else Path(args.policy) / f"{args.eval_kind}-vs-{Path(args.baseline).name}"
    if args.eval_kind == "hacking":
        from alignkit.evaluate.hacking import evaluate_hacking, load_probes, load_prompt_set, print_hacking

        probes = load_probes(args.probes) if args.probes else None
        red_team = load_prompt_set(args.red_team, "--red-team", args.max_red_team) if args.red_team else None
        benign = load_prompt_set(args.benign, "--benign", args.max_red_team) if args.benign else None
        report = evaluate_hacking(args.policy, args.baseline, args.judge, prompts, generation, out, probes=probes,
                                  red_team=red_team, benign=benign, ai_judge=_ai_judge(args),
                                  judge_max_length=args.judge_max_length)
        print_hacking(report, out)
        return
    report = evaluate_winrate(args.policy, args.baseline, _ai_judge(args) or args.judge, prompts, generation, out,
                              judge_max_length=args.judge_max_length)
    print_report(report, out)


def options_help(config_cls: type) -> str:
    """The epilog of a stage's --help: every config key with type, default and meaning."""
    lines = ["config keys (YAML, or --set key=value):"]
    for key, type_name, default, doc in describe(config_cls):
        lines.append(f"  {key} ({type_name}, default {default!r})")
        lines += textwrap.wrap(doc, width=90, initial_indent="      ", subsequent_indent="      ")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alignkit", description="The RLHF pipeline and its alternatives.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, stage in STAGES.items():
        sub = commands.add_parser(
            name,
            help=stage.summary,
            description=stage.summary,
            epilog=options_help(stage.config),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        sub.add_argument("--config", metavar="FILE.yaml", help="YAML config; unset keys take their defaults.")
        sub.add_argument(
            "--set", action="append", default=[], metavar="KEY=VALUE", help="Override one key, e.g. train.max_steps=10."
        )
        sub.add_argument("--resume", action="store_true", help="Continue from the newest checkpoint in output_dir.")
    _add_prm_label_command(commands.choices["prm"])
    _add_eval_commands(commands)
    from alignkit.feedback.cli import add_cai_commands

    add_cai_commands(commands, options_help)
    from alignkit.annotate.cli import add_annotate_commands

    add_annotate_commands(commands)
    from alignkit.pipeline.cli import add_pipeline_command

    add_pipeline_command(commands, options_help)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "eval":
            _run_eval(args)
        elif args.command == "cai":
            from alignkit.feedback.cli import run_cai

            run_cai(args)
        elif args.command == "annotate":
            from alignkit.annotate.cli import run_annotate

            run_annotate(args)
        elif args.command == "pipeline":
            from alignkit.pipeline.cli import run_pipeline_command

            run_pipeline_command(args)
        elif args.command == "prm" and args.prm_action == "label":
            _run_prm_label(args)
        else:
            stage = STAGES[args.command]
            stage.run(load_config(stage.config, args.config, args.set), args.resume)
    except AlignkitError as exc:
        print(f"alignkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
