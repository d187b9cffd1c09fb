"""The benchmark's report: the machine and versions, per-workload summaries, A/B ratios, and the Markdown
section written into ``benchmarks/RESULTS.md`` between ``<!-- bench:<suite>:start -->`` and
``<!-- bench:<suite>:end -->``."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
from importlib import metadata
from pathlib import Path

from alignkit.io import atomic_write_text
from benchmarks.spec import MAX_LENGTH, WORKLOADS

REPO = Path(__file__).resolve().parents[1]
TOOLKITS = ("alignkit", "trl")
PACKAGES = ("torch", "transformers", "trl", "peft", "accelerate")

NOTES = {
    "dpo": "TRL's DPO sequences end at the end-of-turn token; alignkit's keep the newline after it, which it "
           "does not score (one more real token per sequence).",
    "grpo": "At beta=0 alignkit still runs the frozen reference copy over each completion (for the logged KL) and "
            "computes the sampling policy's log-probs in a separate pass; TRL (num_iterations=1) does neither. "
            "Both sample exactly 64 tokens per completion (min_new_tokens).",
    "ppo": "alignkit only: separate critic started from the policy, frozen reference copy.",
}


def machine(threads: int) -> dict:
    """CPU model, cores, RAM and the threads each run uses."""
    cpu = platform.processor() or platform.machine()
    ram_gb = None
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    with contextlib.suppress(OSError, StopIteration):
        kib = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal:"))
        ram_gb = round(kib / 2**20, 1)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu, "physical_cores": _physical_cores(), "logical_cores": os.cpu_count(), "usable_cores": usable,
            "threads": threads, "ram_gb": ram_gb}


def _physical_cores() -> int | None:
    """Distinct (physical id, core id) pairs of /proc/cpuinfo, or None where it does not say."""
    try:
        blocks = Path("/proc/cpuinfo").read_text().split("\n\n")
    except OSError:
        return None
    cores = set()
    for block in blocks:
        fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        if "core id" in fields:
            cores.add((fields.get("physical id"), fields["core id"]))
    return len(cores) or None


def versions() -> dict:
    """Installed versions of the packages that matter, and alignkit's git commit."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    found["alignkit"] = git_commit()
    return found


def git_commit() -> str | None:
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (" (with uncommitted changes)" if dirty else "")


def summarise(runs: list[dict]) -> list[dict]:
    """One row per (workload, toolkit) that ran: medians over its runs (peak memory: the largest)."""
    rows = []
    keys = list(dict.fromkeys((r["workload"], r["toolkit"]) for r in runs))
    for workload, toolkit in keys:
        mine = [r for r in runs if (r["workload"], r["toolkit"]) == (workload, toolkit)]
        ok = [r for r in mine if r["status"] == "ok"]
        row = {"workload": workload, "toolkit": toolkit, "runs": len(ok)}
        if not ok:
            rows.append({**row, "status": mine[0]["status"], "note": mine[0].get("note", "")})
            continue

        def median(key, runs=ok):
            return statistics.median(r["summary"][key] for r in runs)

        rows.append({**row, "status": "ok",
                     "median_step_seconds": median("median_step_seconds"),
                     "real_tokens_per_second": median("real_tokens_per_second"),
                     "padded_tokens_per_second": median("padded_tokens_per_second"),
                     "real_tokens_per_step": median("real_tokens_per_step"),
                     "padded_tokens_per_step": median("padded_tokens_per_step"),
                     "peak_rss_mb": max(r["summary"]["peak_rss_mb"] for r in ok),
                     "matmul_gflops": statistics.median(r["matmul_gflops"] for r in ok),
                     "roofline_fraction": statistics.median(r["roofline_fraction"] for r in ok),
                     "flops_per_token_coefficient": ok[0]["flops_per_token_coefficient"],
                     "non_embedding_parameters": ok[0]["parameters"]["non_embedding"]})
    return rows


def pair_ratios(runs: list[dict]) -> dict[str, list[float | None]]:
    """Per workload, alignkit's real tokens/s over TRL's for each A/B pair of runs (None where one side did not run)."""
    ratios: dict[str, list[float | None]] = {}
    by_key = {(r["workload"], r["toolkit"], r["repeat"]): r for r in runs}
    for workload, _, repeat in by_key:
        pair = [by_key.get((workload, t, repeat)) for t in TOOLKITS]
        if any(p is None for p in pair):
            continue
        ratio = None
        if all(p["status"] == "ok" for p in pair):
            ratio = pair[0]["summary"]["real_tokens_per_second"] / pair[1]["summary"]["real_tokens_per_second"]
        slots = ratios.setdefault(workload, [])
        slots.extend([None] * (repeat + 1 - len(slots)))
        slots[repeat] = ratio
    return ratios


def markdown(results: dict) -> str:
    """The suite's section of RESULTS.md (without its markers)."""
    s, m, v = results["settings"], results["machine"], results["versions"]
    rows = results["summary"]
    n = next((r["non_embedding_parameters"] for r in rows if r["status"] == "ok"), None)
    lines = [
        f"## Throughput side by side with TRL: `{results['suite']}` suite",
        "",
        "    " + results["command"],
        "",
        f"Measured {results['created']} (JSON: `{results['json']}`).",
        f"- Machine: {m['cpu']}, {m.get('physical_cores') or '?'} physical / {m['logical_cores']} logical cores "
        f"({m['usable_cores']} usable), "
        f"{m['ram_gb']} GB RAM; threads per run: {m['threads']} (torch.set_num_threads and OMP_NUM_THREADS).",
        "- Versions: " + ", ".join(f"{k} {v[k] or 'not installed'}" for k in (*_packages(), "alignkit")) + ".",
        f"- Model `{s['model']}`, float32, N = {_millions(n)} non-embedding parameters; sequences of at most "
        f"{MAX_LENGTH} tokens; 4 sequences or pairs per optimizer step (GRPO/PPO: 4 prompts x 4 completions of 64 "
        f"tokens); {s['warmup']} warm-up + {s['steps']} measured steps per run; {s['repeats']} run(s) per toolkit, "
        "alternating alignkit and TRL (A/B/A/B), each run in its own process.",
        "",
        "| workload | toolkit | median s/step | real tokens/s | padded tokens/s | peak RSS | roofline fraction |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        name = "TRL" if r["toolkit"] == "trl" else r["toolkit"]
        if r["status"] != "ok":  # a not-available note says so itself
            what = r["note"] if r["status"] == "not_available" else f"{r['status']}: {r['note']}"
            lines.append(f"| {r['workload']} | {name} | {what} | | | | |")
            continue
        lines.append(
            f"| {r['workload']} | {name} | {r['median_step_seconds']:.2f} | {r['real_tokens_per_second']:.1f} | "
            f"{r['padded_tokens_per_second']:.1f} | {r['peak_rss_mb'] / 1024:.2f} GB | "
            f"{r['roofline_fraction']:.2f} ({r['flops_per_token_coefficient']}N per token, matmul "
            f"{r['matmul_gflops']:.0f} GFLOP/s) |")
    ratios = {w: values for w, values in results["ratios"].items() if any(x is not None for x in values)}
    if ratios:
        lines += ["", "| workload | alignkit / TRL real tokens/s, per A/B pair |", "| --- | --- |"]
        lines += [f"| {w} | {', '.join('-' if x is None else f'{x:.2f}' for x in values)} |"
                  for w, values in ratios.items()]
    lines += ["", *_notes(results)]
    return "\n".join(lines)


def _notes(results: dict) -> list[str]:
    notes = [
        "Real tokens: the non-pad tokens of every sequence a step trains on (DPO: prompt + chosen and prompt + "
        "rejected; GRPO/PPO: prompt + completion); padded tokens: the positions the model computes, rows x padded "
        "length summed over micro-batches (alignkit's DPO and reward model compute a pair's shared prompt once, so "
        "they can compute fewer positions than real tokens; the roofline fraction counts real tokens, so the work "
        "saved counts as speed). "
        "A step is timed from its start to the optimizer update (GRPO/PPO: sampling included); TRL by a "
        "TrainerCallback (on_step_begin to on_step_end), alignkit by wrapping its engine's optimizer step in the "
        "benchmark's process. Peak RSS: the run process's peak resident memory at the end of its last step "
        "(loading included). Roofline fraction: c x N x real tokens/s over the measured float32 GFLOP/s of a "
        f"{results['settings']['matmul_size']}-cubed matmul on the same threads; c = 6 per trained token, +2 for a "
        "reference forward pass, +2 for sampling, PPO's critic counted as a second network (see benchmarks/spec.py).",
        "Each toolkit steps with its own default AdamW (alignkit: torch.optim.AdamW; TRL: its default `optim`, "
        "recorded per run in the JSON); bf16 and gradient checkpointing are off for both.",
    ]
    stages = {WORKLOADS[r["workload"]].stage for r in results["summary"]}
    notes += [NOTES[stage] for stage in ("dpo", "grpo", "ppo") if stage in stages]
    notes += results.get("skipped", [])
    return [f"- {note}" for note in notes]


def _packages() -> tuple[str, ...]:
    return tuple(p for p in PACKAGES if p != "accelerate")


def _millions(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


def markers(suite: str) -> tuple[str, str]:
    return f"<!-- bench:{suite}:start -->", f"<!-- bench:{suite}:end -->"


def replace_section(document: str, suite: str, body: str) -> str:
    """``document`` with the section between ``suite``'s markers replaced by ``body`` (markers kept), or with
    the marked section appended when the markers are absent. One marker without the other is an error."""
    start, end = markers(suite)
    block = f"{start}\n{body.strip()}\n{end}"
    i, j = document.find(start), document.find(end)
    if i == -1 and j == -1:
        return (document.rstrip("\n") + "\n\n" if document.strip() else "") + block + "\n"
    if i == -1 or j == -1 or j < i:
        raise ValueError(f"the document has a broken '{suite}' section: expected {start} before {end}")
    return document[:i] + block + document[j + len(end):]


def write_section(path: str | Path, suite: str, body: str) -> None:
    """Replace (or append) ``suite``'s section of the Markdown file at ``path``, atomically."""
    path = Path(path)
    document = path.read_text() if path.exists() else ""
    atomic_write_text(path, replace_section(document, suite, body))
