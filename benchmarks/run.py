"""Throughput benchmark: alignkit side by side with TRL, every run in its own process, A/B/A/B.

    python -m benchmarks.run --suite cpu      # the measurement: SmolLM2-135M-Instruct, 2 threads (a quiet machine)
    python -m benchmarks.run --quick          # = --suite smoke: a tiny random model, 1 warm-up + 1 step each
    python -m benchmarks.run --suite smoke --only sft,dpo_lora --toolkit alignkit --out /tmp/bench.json

For each workload (benchmarks/spec.py) and each of ``--repeats`` pairs, alignkit runs, then TRL, each in a
fresh ``python -m benchmarks.child`` process with ``OMP_NUM_THREADS`` and torch's threads set. Results go
to ``--out`` (default ``benchmarks/results/<suite>-<timestamp>.json``) and, as Markdown, between
``<!-- bench:<suite>:start/end -->`` in ``--markdown`` (default: ``benchmarks/RESULTS.md`` for the cpu
suite, the JSON's path with ``.md`` for the smoke suite). Without TRL (the ``bench`` extra) its side is
skipped, with a note. Exit status 1 if any run failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from alignkit.io import atomic_write_json
from benchmarks import report
from benchmarks.spec import SUITES, WORKLOADS, RunSpec

REPO = report.REPO
LOG_TAIL_LINES = 30


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=sorted(SUITES), default="cpu")
    parser.add_argument("--quick", action="store_true", help="the smoke suite (same as --suite smoke)")
    parser.add_argument("--only", metavar="WORKLOAD[,..]", help=f"workloads to run, of: {', '.join(WORKLOADS)}")
    parser.add_argument("--toolkit", choices=("alignkit", "trl", "both"), default="both")
    parser.add_argument("--repeats", type=int, help="A/B pairs of runs per workload (cpu suite: 2)")
    parser.add_argument("--warmup", type=int, help="optimizer steps before the measured ones (default 1)")
    parser.add_argument("--steps", type=int, help="measured optimizer steps per run (cpu suite: 3)")
    parser.add_argument("--threads", type=int, help="threads per run (cpu suite: 2)")
    parser.add_argument("--model", help="model name or folder (default: the suite's)")
    parser.add_argument("--out", type=Path, help="JSON results file")
    parser.add_argument("--markdown", type=Path, help="Markdown file whose suite section is replaced")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one run may take (default 3600)")
    args = parser.parse_args(argv)
    if args.quick:
        args.suite = "smoke"
    names = args.only.split(",") if args.only else list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        parser.error(f"--only: unknown workload(s) {', '.join(unknown)}; choose from {', '.join(WORKLOADS)}")
    args.workloads = names
    for name in ("repeats", "warmup", "steps", "threads"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup" else 1):
            parser.error(f"--{name} must be at least {0 if name == 'warmup' else 1}, got {value}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    suite = SUITES[args.suite]
    settings = {"suite": suite.name, "warmup": _pick(args.warmup, suite.warmup),
                "steps": _pick(args.steps, suite.steps), "repeats": _pick(args.repeats, suite.repeats),
                "threads": _pick(args.threads, suite.threads), "matmul_size": suite.matmul_size,
                "model": args.model or suite.model}
    toolkits = ["alignkit", "trl"] if args.toolkit == "both" else [args.toolkit]
    skipped = []
    if "trl" in toolkits and importlib.util.find_spec("trl") is None:
        toolkits.remove("trl")
        skipped.append("TRL's side was skipped: trl is not installed (pip install -e '.[bench]').")
        print(f"note: {skipped[-1]}", file=sys.stderr)
    created = datetime.now()
    out = args.out or REPO / "benchmarks" / "results" / f"{suite.name}-{created:%Y%m%d-%H%M%S}.json"
    markdown_path = args.markdown or (REPO / "benchmarks" / "RESULTS.md" if suite.markdown else out.with_suffix(".md"))
    command = "python -m benchmarks.run " + shlex.join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="alignkit-bench-") as work:
        model = settings["model"]
        if model == "tiny":
            model = _build_tiny_model(Path(work) / "tiny-model")
        runs = _run_all(args.workloads, toolkits, settings, model, Path(work), args.timeout)
    results = {
        "suite": suite.name, "command": command, "created": created.isoformat(timespec="seconds"),
        "json": _shown(out), "versions": report.versions(), "machine": report.machine(settings["threads"]),
        "settings": settings, "skipped": skipped, "runs": runs,
    }
    results["summary"] = report.summarise(runs)
    results["ratios"] = report.pair_ratios(runs)
    atomic_write_json(out, results)
    body = report.markdown(results)
    report.write_section(markdown_path, suite.name, body)
    print(body)
    print(f"\nresults: {out}\nmarkdown: {markdown_path} (section '{suite.name}')")
    return 1 if any(r["status"] == "failed" for r in runs) else 0


def _run_all(workloads: list[str], toolkits: list[str], settings: dict, model: str, work: Path,
             timeout: float) -> list[dict]:
    runs, total = [], len(workloads) * settings["repeats"] * len(toolkits)
    for workload in workloads:
        unavailable = set()
        for repeat in range(settings["repeats"]):
            for toolkit in toolkits:
                if toolkit in unavailable:
                    continue
                spec = RunSpec(toolkit=toolkit, workload=workload, model=model, threads=settings["threads"],
                               warmup=settings["warmup"], steps=settings["steps"],
                               matmul_size=settings["matmul_size"],
                               work_dir=str(work / f"{workload}-{toolkit}-{repeat}"))
                print(f"[{len(runs) + 1}/{total}] {workload} {toolkit} (pair {repeat + 1}) ...", file=sys.stderr,
                      flush=True)
                result = run_child(spec, timeout)
                result["repeat"] = repeat
                print(f"    {_one_line(result)}", file=sys.stderr, flush=True)
                if result["status"] == "not_available":
                    unavailable.add(toolkit)
                runs.append(result)
    return runs


def run_child(spec: RunSpec, timeout: float) -> dict:
    """One run in a fresh process; its result (status failed, with the log's tail, if it wrote none)."""
    folder = Path(spec.work_dir)
    folder.mkdir(parents=True)
    spec_file, result_file, log_file = folder / "spec.json", folder / "result.json", folder / "log.txt"
    spec_file.write_text(json.dumps(spec.to_json()))
    cmd = [sys.executable, "-m", "benchmarks.child", "--spec", str(spec_file), "--result", str(result_file)]
    threads = str(spec.threads)
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "TOKENIZERS_PARALLELISM": "false"}
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("HF_DATASETS_OFFLINE", "1")
    began = time.perf_counter()
    try:
        with log_file.open("w") as log:
            code = subprocess.run(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        code = None
    wall = time.perf_counter() - began
    if result_file.exists():
        result = json.loads(result_file.read_text())
    else:
        note = f"timed out after {timeout:.0f} s" if code is None else f"exited with status {code} and no result"
        result = {"toolkit": spec.toolkit, "workload": spec.workload, "status": "failed", "note": note}
    if result["status"] == "failed":
        tail = log_file.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
        result["log_tail"] = tail
        print("\n".join(tail), file=sys.stderr)
    result.update(wall_seconds=wall, child_command=shlex.join(["python", *cmd[1:]]), spec=spec.to_json())
    shutil.rmtree(folder, ignore_errors=True)  # models written by the run
    return result


def _build_tiny_model(folder: Path) -> str:
    from alignkit.models import build_tiny_model, smollm2_tokenizer_dir

    return str(build_tiny_model(folder, smollm2_tokenizer_dir()))


def _one_line(result: dict) -> str:
    if result["status"] != "ok":
        return f"{result['status']}: {result.get('note', '')}"
    s = result["summary"]
    return (f"{s['median_step_seconds']:.2f} s/step, {s['real_tokens_per_second']:.1f} real tokens/s, "
            f"peak RSS {s['peak_rss_mb']:.0f} MB")


def _pick(value, default):
    return default if value is None else value


def _shown(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


if __name__ == "__main__":
    raise SystemExit(main())
