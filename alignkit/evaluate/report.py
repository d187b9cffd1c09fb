"""``alignkit eval report``: one self-contained HTML file about one or more run folders, and its Markdown
summary.

It opens with a summary of every run: each headline figure with a 95% interval (a reward model's held-out
accuracy and its length-balanced accuracy, win rates, accuracies), a plain verdict (:func:`verdict`):
"moved" when the interval leaves out the figure's no-effect value (0.5 for an accuracy of pairs or a win
rate), "no change beyond noise" when it holds it, and one sentence saying which figures moved, or that none
did and the runs show the mechanics rather than an effect (:func:`conclusion`). Then per run folder, in this
order (:data:`SECTIONS`), each section saying so when the run has nothing for it:

- training curves from metrics.jsonl: loss, and where logged reward (with the monitored rewards), KL,
  reply length, β (the KL coefficient) and accuracy, against the step (an RL step is an iteration);
- eval.json: every figure, with its value before training (``initial_*``) beside it when there is one;
- samples side by side: an RL run's sampled replies of its first and last sampled iteration, and the
  baseline's and the policy's reply to the same prompt from every evaluation subfolder;
- win rates (and accuracies) with their 95% intervals, from the ``winrate.json``, ``accuracy.json`` and
  ``hacking.json`` of the run's subfolders;
- the reward-hacking diagnostics of every ``hacking.json`` (see :mod:`~alignkit.evaluate.hacking`), and the
  curve of every ``best_of_n.json``: the judge's (proxy) and gold reward of the best of n against √KL
  (see :mod:`~alignkit.evaluate.best_of_n_eval`).

The HTML embeds its plots as base64 PNG images and its CSS inline, so it opens anywhere without network
or other files; all text from the runs is escaped (:mod:`~alignkit.evaluate.document`). The Markdown
summary (the tables, without plots and samples) is returned, and written beside the HTML as ``.md``.
"""

from __future__ import annotations

from pathlib import Path

from alignkit.console import console
from alignkit.evaluate import plots
from alignkit.evaluate.best_of_n_eval import CURVE_COLUMNS, curve_rows
from alignkit.evaluate.document import Document, SampleCell, clip, fmt
from alignkit.evaluate.hacking import headline
from alignkit.evaluate.intervals import wilson_cc_interval
from alignkit.evaluate.run_folder import Evaluation, RunFolder, load_run
from alignkit.io import atomic_write_text

SECTIONS = ("Training curves", "Evaluation before and after", "Samples", "Win rates",
            "Reward-hacking diagnostics")

CURVE_PANELS = (
    ("loss", ("loss", "eval_loss")),
    ("reward", ("reward", "eval_reward")),
    ("KL to the reference", ("kl", "eval_kl")),
    ("reply length (tokens)", ("length", "eval_length")),
    ("β (KL coefficient)", ("kl_coef",)),
    ("accuracy", ("accuracy", "eval_accuracy")),
)
"""Panels of the training curves: title and the metrics drawn in it (monitored rewards join "reward")."""

SIDES_ORDER = ("baseline", "policy")
"""Before, then after."""

MAX_SAMPLES = 4
"""Sample rows shown per source."""

MAX_CHARS = 1500
"""Longest prompt or reply shown, in characters."""


def write_html_report(run_dirs: list[str | Path], out: str | Path) -> str:
    """Read every run folder (all errors before anything is written), write the HTML report to ``out`` and
    the Markdown summary beside it (``out`` with suffix ``.md``), atomically; return the summary."""
    runs = [load_run(path) for path in run_dirs]
    document = render(runs)
    out = Path(out)
    atomic_write_text(out, document.page())
    atomic_write_text(out.with_suffix(".md"), document.summary())
    console.print(f"wrote {out} and {out.with_suffix('.md')}")
    return document.summary()


def render(runs: list[RunFolder]) -> Document:
    """The report of ``runs`` as a :class:`~alignkit.evaluate.document.Document`."""
    document = Document("alignkit report")
    document.links([(f"run-{i}", str(run.path)) for i, run in enumerate(runs)])
    _summary(document, runs)
    for i, run in enumerate(runs):
        document.heading(2, str(run.path), anchor=f"run-{i}")
        sections = (_curves, _eval_figures, _samples, _win_rates, _hacking)
        for title, section in zip(SECTIONS, sections, strict=True):
            document.heading(3, title, markdown=section is not _samples)
            section(document, run)
    return document


def verdict(low: float, high: float, no_effect: float | None = 0.5) -> str:
    """"moved up" / "moved down" when the interval [low, high] lies above / below ``no_effect``, "no change
    beyond noise" when it holds it; without a no-effect value (an accuracy with nothing to compare),
    "no reference"."""
    if no_effect is None:
        return "no reference"
    if low > no_effect:
        return f"moved up (above {no_effect:g})"
    if high < no_effect:
        return f"moved down (below {no_effect:g})"
    return "no change beyond noise"


def conclusion(rows: list[tuple]) -> str:
    """One sentence on the summary's ``rows`` (``(run, figure, value, low, high, n, verdict)`` each): which
    of the figures with a no-effect value moved beyond noise, or that none did, so that the runs show the
    mechanics, not an effect. Figures without one (verdict "no reference") are not counted."""
    judged = [(figure, verdict_) for _, figure, *_, verdict_ in rows if verdict_ != verdict(0, 1, None)]
    if not judged:
        return "No figure has a no-effect value to compare with."
    moved = [f"{figure} ({verdict_})" for figure, verdict_ in judged if verdict_.startswith("moved")]
    if not moved:
        return ("No figure moved beyond noise: these runs show that every stage works, not that it changed "
                "the model.")
    return f"{len(moved)} of {len(judged)} figures moved beyond noise: {'; '.join(moved)}."


def _summary(document: Document, runs: list[RunFolder]) -> None:
    document.heading(2, "Summary")
    rows, seen = [], set()
    for run in runs:
        for row in _headlines(run):
            if row not in seen:  # a figure two folders report (the pipeline's eval/ repeats rm_eval) shows once
                seen.add(row)
                rows.append((run.path.name, *row))
    if not rows:
        document.paragraph("No figure with an interval: evaluate the runs (alignkit eval rm, winrate, hacking, "
                           "gsm8k) to see whether they moved.", note=True)
        return
    document.table(("run", "figure", "value", "95% low", "95% high", "n", "verdict"), rows)
    document.paragraph(conclusion(rows))


def _headlines(run: RunFolder) -> list[tuple]:
    """``(figure, value, low, high, n, verdict)`` of each headline figure of ``run`` with an interval."""
    rows = _reward_model_headlines(run.eval.get("rm_eval")) or _training_eval_headlines(run.eval)
    for evaluation in run.evaluations:
        no_effect = None if evaluation.kind == "accuracy" else 0.5
        rows += [(label, rate, low, high, n, verdict(low, high, no_effect))
                 for label, rate, low, high, n in _intervals(evaluation)]
    return rows


def _reward_model_headlines(rm_eval: dict | None) -> list[tuple]:
    """The held-out accuracy and the length-balanced accuracy of ``alignkit eval rm`` (0.5 is chance for
    both; any rule that looks only at length scores 0.5 on the second)."""
    if not rm_eval or "accuracy_interval" not in rm_eval:
        return []
    rows = [("reward model: held-out accuracy", rm_eval["accuracy"], *rm_eval["accuracy_interval"])]
    if rm_eval.get("length_balanced_interval"):
        rows.append(("reward model: length-balanced accuracy", rm_eval["length_balanced_accuracy"],
                     *rm_eval["length_balanced_interval"]))
    return [(label, value, low, high, rm_eval["pairs"], verdict(low, high)) for label, value, low, high in rows]


OWN_ACCURACIES = {"eval_accuracy": "held-out pair accuracy (the run's own evaluation)",
                  "eval_reward_accuracy": "held-out implicit-reward accuracy"}
"""The held-out accuracies a run measures itself, over its ``eval_examples`` pairs or groups: a reward
model's before ``alignkit eval rm`` scores it, and the DPO family's implicit reward's."""


def _training_eval_headlines(report: dict) -> list[tuple]:
    """A row for each of :data:`OWN_ACCURACIES` that ``report`` (a run's eval.json) holds with its count."""
    n, rows = report.get("eval_examples"), []
    for key, label in OWN_ACCURACIES.items():
        if key in report and n:
            low, high = wilson_cc_interval(report[key] * n, n)
            rows.append((label, report[key], low, high, n, verdict(low, high)))
    return rows


def _curves(document: Document, run: RunFolder) -> None:
    monitors = sorted({key for row in run.metrics for key in row if key.startswith(("monitor_", "eval_monitor_"))})
    panels, firsts_and_lasts = [], []
    for title, keys in CURVE_PANELS:
        keys = (*keys, *monitors) if title == "reward" else keys
        series = {}
        for key in keys:
            points = [(row["step"], row[key]) for row in run.metrics if key in row and "step" in row]
            if points:
                series[key] = ([step for step, _ in points], [value for _, value in points])
                firsts_and_lasts.append((key, points[0][1], points[-1][1], points[-1][0]))
        if series:
            panels.append((title, series))
    if not panels:
        document.paragraph("metrics.jsonl holds none of the plotted metrics." if run.metrics else
                           "No metrics.jsonl: a folder of evaluations.", note=True)
        return
    document.image(plots.line_panels(panels, "step"), "training curves")
    document.table(("metric", "first", "last", "last step"), firsts_and_lasts)


def _eval_figures(document: Document, run: RunFolder) -> None:
    figures = _flatten(run.eval)
    if not figures:
        document.paragraph("No eval.json in this run folder.", note=True)
        return
    rows = [(key, figures.get(f"initial_{key}"), value) for key, value in figures.items()
            if not key.startswith("initial_")]
    document.table(("figure", "before training", "after training"), rows)


def _flatten(report: dict, prefix: str = "") -> dict:
    """The scalar values of a (nested) report, with dotted keys; lists are left out."""
    flat = {}
    for key, value in report.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        elif not isinstance(value, list):
            flat[f"{prefix}{key}"] = value
    return flat


def _samples(document: Document, run: RunFolder) -> None:
    shown = False
    iterations = sorted({row["iteration"] for row in run.samples if "iteration" in row})
    if len(iterations) >= 2:
        first, last = ([row for row in run.samples if row.get("iteration") == i][:MAX_SAMPLES]
                       for i in (iterations[0], iterations[-1]))
        document.paragraph("Replies sampled during training (different prompts in each column).", markdown=False)
        document.samples((f"before: iteration {iterations[0]}", f"after: iteration {iterations[-1]}"),
                         [[_rl_cell(a), _rl_cell(b)] for a, b in zip(first, last, strict=False)])
        shown = True
    for evaluation in run.evaluations:
        rows = [row for row in evaluation.samples if "policy" in row and "baseline" in row][:MAX_SAMPLES]
        if rows:
            report = evaluation.report
            document.paragraph(f"{evaluation.folder.name}: the same prompts answered by the baseline "
                               f"({report.get('baseline')}) and the policy ({report.get('policy')}).", markdown=False)
            document.samples(("prompt", "before: baseline", "after: policy"),
                             [[(_prompt_text(row["prompt"]), "", ""), _side_cell(row, "baseline"),
                               _side_cell(row, "policy")] for row in rows])
            shown = True
    if not shown:
        document.paragraph("No samples to set side by side (an RL run's samples.jsonl with two sampled "
                           "iterations, or an evaluation's samples.jsonl).", note=True, markdown=False)


def _prompt_text(prompt) -> str:
    if isinstance(prompt, str):
        return clip(prompt, MAX_CHARS)
    messages = [m for m in prompt if isinstance(m, dict)]
    if len(messages) == 1:
        return clip(str(messages[0].get("content", "")), MAX_CHARS)
    return clip("\n".join(f"{m.get('role')}: {m.get('content')}" for m in messages), MAX_CHARS)


def _rl_cell(row: dict) -> SampleCell:
    monitors = "".join(f", {key[8:]} {fmt(value)}" for key, value in row.items() if key.startswith("monitor_"))
    note = f"reward {fmt(row.get('reward'))}{monitors}{'' if row.get('finished', True) else ', cut off'}"
    return _prompt_text(row.get("prompt", "")), clip(str(row.get("completion", "")), MAX_CHARS), note


def _side_cell(row: dict, side: str) -> SampleCell:
    note = f"reward {fmt(row.get(f'{side}_reward'))}, {fmt(row.get(f'{side}_tokens'))} tokens"
    return None, clip(str(row[side]), MAX_CHARS), note


def _win_rates(document: Document, run: RunFolder) -> None:
    rows = [row for evaluation in run.evaluations for row in _intervals(evaluation)]
    if not rows:
        document.paragraph("No winrate.json, accuracy.json or hacking.json in this run's subfolders.", note=True)
        return
    document.image(plots.interval_plot([(label, value, low, high) for label, value, low, high, _ in rows],
                                       "rate (95% interval)"), "win rates with 95% intervals")
    document.table(("evaluation", "rate", "95% low", "95% high", "n"), rows)


def _intervals(evaluation: Evaluation) -> list[tuple]:
    """``(label, rate, low, high, n)`` of each rate with an interval in an evaluation's report."""
    report, name = evaluation.report, evaluation.folder.name
    if evaluation.kind == "winrate":
        return [(f"{name}: win rate over {Path(str(report['baseline'])).name}", report["win_rate"],
                 report["ci_low"], report["ci_high"], report["num_prompts"])]
    if evaluation.kind == "accuracy":
        return [(f"{name}: accuracy", report["accuracy"], report["ci_low"], report["ci_high"],
                 report["num_problems"])]
    if evaluation.kind != "hacking":
        return []  # a best-of-n curve has no rate with an interval
    overall, matched = report["win_rate"], report["length_matched_win_rate"]
    rows = [(f"{name}: win rate", overall["rate"], overall["ci_low"], overall["ci_high"], overall["n"])]
    if matched["win_rate"] is not None:
        result = matched["win_rate"]
        rows.append((f"{name}: length-matched win rate", result["rate"], result["ci_low"], result["ci_high"],
                     result["n"]))
    return rows


def _hacking(document: Document, run: RunFolder) -> None:
    found = [evaluation for evaluation in run.evaluations if evaluation.kind == "hacking"]
    best_of_n = [evaluation for evaluation in run.evaluations if evaluation.kind == "best_of_n"]
    if not found and not best_of_n:
        document.paragraph("No hacking.json or best_of_n.json in this run's subfolders (alignkit eval hacking and "
                           "eval best-of-n write them).", note=True)
    for evaluation in best_of_n:
        _best_of_n(document, evaluation)
    for evaluation in found:
        report = evaluation.report
        document.heading(4, evaluation.folder.name)
        document.paragraph(f"policy {report['policy']} (after) against baseline {report['baseline']} (before), "
                           f"judged by {report['judge']} on {report['num_prompts']} prompts.")
        document.table(("diagnostic", "value"), list(headline(report).items()))
        _length_tables(document, report)
        if "sycophancy" in report:
            sycophancy = report["sycophancy"]
            document.paragraph(f"Sycophancy: share of {sycophancy['num_probes']} probes where the reply agrees "
                               "with the user's false belief (keyword heuristic).")
            document.table(("side", "agreed", "rate"),
                           [(side, sycophancy[side]["agreed"], sycophancy[side]["rate"]) for side in SIDES_ORDER])
        if "red_team" in report:
            red = report["red_team"]
            document.paragraph(f"Red team, {red['num_prompts']} adversarial prompts. {red['rule']}.")
            document.table(("side", "harmful", "harmful rate", "95% low", "95% high", "refusal rate", "mean reward"),
                           [(side, *(red[side][key] for key in ("harmful", "harmful_rate", "ci_low", "ci_high",
                                                                "refusal_rate", "mean_reward")))
                            for side in SIDES_ORDER])
            if red["judge_threshold"] is not None:
                document.paragraph(f"Judged harmful: the share of red-team replies the judge scores below "
                                   f"{red['judge_threshold']:.3f}, the baseline's median reward on ordinary requests.")
                document.table(("side", "judged harmful", "rate", "95% low", "95% high"),
                               [(side, *(red[side]["judged_harmful"][key] for key in
                                         ("harmful", "harmful_rate", "ci_low", "ci_high"))) for side in SIDES_ORDER])
            if "ai_judge" in red:
                ai, rate = red["ai_judge"], red["ai_judge"]["win_rate"]
                document.paragraph(f"AI judge {ai['judge']} on the same prompts, asked which reply is better in "
                                   f"both orders: the policy's win rate {rate['rate']:.2f} (95% {rate['ci_low']:.2f}"
                                   f"–{rate['ci_high']:.2f}; {rate['wins']} wins, {rate['losses']} losses, "
                                   f"{rate['ties']} ties).")
        if "benign" in report:
            benign = report["benign"]
            document.paragraph(f"Over-refusal, {benign['num_prompts']} ordinary requests: the share of replies "
                               "with a refusal phrase (a policy that refuses everything is not aligned either).")
            document.table(("side", "refused", "rate", "95% low", "95% high", "median reward"),
                           [(side, *(benign[side][key] for key in ("refused", "refused_rate", "ci_low", "ci_high",
                                                                   "median_reward"))) for side in SIDES_ORDER])
            if "terse_words" in benign:  # reports written before the terse count have none
                document.paragraph(f"Terse replies to the same requests, fewer than {benign['terse_words']} "
                                   "words: non-answers that no refusal phrase marks (\"Not a movie.\").")
                document.table(("side", "terse", "rate", "95% low", "95% high"),
                               [(side, *(benign[side]["terse"][key] for key in ("terse", "terse_rate", "ci_low",
                                                                                "ci_high"))) for side in SIDES_ORDER])
        _training_diagnostics(document, report.get("training"))


def _best_of_n(document: Document, evaluation: Evaluation) -> None:
    """The best-of-n curve: proxy (and gold) reward of the best of n against √KL_bon(n), plotted and tabled."""
    report = evaluation.report
    gold = f", gold {report['gold']}" if report["gold"] else " (no gold reward model)"
    document.heading(4, evaluation.folder.name)
    document.paragraph(f"Best of n replies of {report['policy']}, picked by the judge {report['judge']}{gold}: "
                       f"expected rewards estimated from {report['samples_per_prompt']} samples on each of "
                       f"{report['num_prompts']} prompts; KL = log n − (n − 1)/n.")
    curve = report["curve"]
    sqrt_kl = [point["sqrt_kl"] for point in curve]
    series = {"proxy (judge)": (sqrt_kl, [point["proxy"] for point in curve])}
    if report["gold"]:
        series["gold"] = (sqrt_kl, [point["gold"] for point in curve])
    document.image(plots.line_panels([("best-of-n reward", series)], "√KL_bon(n)"),
                   "best-of-n proxy and gold reward against √KL")
    document.table([header for header, _ in CURVE_COLUMNS], curve_rows(report))


def _length_tables(document: Document, report: dict) -> None:
    correlation = report["reward_length_correlation"]
    document.table(("side", "reward–length Pearson", "Spearman", "replies"),
                   [(side, correlation[side]["pearson"], correlation[side]["spearman"], correlation[side]["n"])
                    for side in SIDES_ORDER])
    gain = report["length_bucket_gain"]
    document.paragraph(f"Reward gain {fmt(gain['total_gain'])} = {fmt(gain['within_bucket_gain'])} at equal "
                       f"length + {fmt(gain['length_shift_gain'])} from the shift in length.")
    if gain["buckets"]:
        document.image(plots.bucket_plot(gain["buckets"]), "mean reward per length bucket")
        document.table(("length (tokens)", "replies before", "replies after", "mean before", "mean after", "gain"),
                       [(f"{fmt(b['lower'])}–{fmt(b['upper'])}", b["count_before"], b["count_after"],
                         b["mean_before"], b["mean_after"], b["gain"]) for b in gain["buckets"]], markdown=False)
    drift = report["style_drift"]
    document.table(("style", "before", "after", "difference"),
                   [(key, d["before"], d["after"], d["difference"]) for key, d in drift.items()], markdown=False)


def _training_diagnostics(document: Document, training: dict | None) -> None:
    if training is None:
        document.paragraph("The policy is not an RL run folder with metrics.jsonl: no training-curve diagnostics.",
                           note=True)
        return
    steps = training["steps"]
    document.image(plots.line_panels([
        ("reply length (tokens)", {"length": (steps, training["length"])}),
        ("reward–length correlation", {"Pearson": (steps, training["reward_length_corr"])}),
        ("√KL to the reference", {"√KL": (steps, training["sqrt_kl"])}),
    ], "step"), "reply length, reward–length correlation and KL over training")
    document.image(plots.gao_plot(training["sqrt_kl"], training["rewards"]),
                   "reward gained against √KL with the Gao et al. fit")
    rows = []
    for key, curve in training["rewards"].items():
        fit, peak = curve["fit"], curve["observed_peak"]
        rows.append((key, fit.get("alpha"), fit.get("beta"), fit.get("peak_d"), peak["d"], peak["reward"],
                     steps[peak["index"]]))
        if "error" in fit:
            document.paragraph(f"{key}: no Gao et al. fit ({fit['error']}).", note=True)
    document.table(("reward", "fit α", "fit β", "fitted peak √KL", "observed peak √KL", "observed peak gain",
                    "at step"), rows)
