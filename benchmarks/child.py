"""One benchmark run in its own process: ``python -m benchmarks.child --spec SPEC.json --result RESULT.json``.

Started by :mod:`benchmarks.run` with ``OMP_NUM_THREADS`` set; sets torch's threads to the spec's,
times a float32 matmul (the roofline), runs the workload of one toolkit and writes its per-step
records and summary as JSON to ``--result``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import time
import traceback

import torch

from benchmarks.measure import StepRecorder, matmul_gflops, parameter_counts, summarise
from benchmarks.spec import WORKLOADS, NotAvailable, RunSpec


def run_one(spec: RunSpec) -> dict:
    torch.set_num_threads(spec.threads)
    result = {"toolkit": spec.toolkit, "workload": spec.workload, "threads": torch.get_num_threads()}
    result["matmul_gflops"] = matmul_gflops(spec.matmul_size)
    result["matmul_size"] = spec.matmul_size
    recorder = StepRecorder()
    began = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.workloads_{spec.toolkit}")
        result["info"] = module.run(spec, recorder)
    except NotAvailable as exc:
        return {**result, "status": "not_available", "note": str(exc)}
    result["run_seconds"] = time.perf_counter() - began
    steps = recorder.to_json()
    if len(steps) != spec.total_steps:
        raise RuntimeError(f"expected {spec.total_steps} timed optimizer steps, recorded {len(steps)}")
    result.update(status="ok", steps=steps, summary=summarise(steps, spec.warmup))
    from alignkit.models import resolve_model_path

    params = parameter_counts(resolve_model_path(spec.model))
    coefficient = WORKLOADS[spec.workload].flops_per_token
    flops = coefficient * params["non_embedding"] * result["summary"]["real_tokens_per_second"]
    result.update(parameters=params, flops_per_token_coefficient=coefficient,
                  roofline_fraction=flops / (result["matmul_gflops"] * 1e9))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spec", required=True)
    parser.add_argument("--result", required=True)
    args = parser.parse_args()
    with open(args.spec) as f:
        spec = RunSpec(**json.load(f))
    try:
        result = run_one(spec)
    except BaseException as exc:
        result = {"toolkit": spec.toolkit, "workload": spec.workload, "status": "failed",
                  "note": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
    with open(args.result, "w") as f:
        json.dump(result, f, indent=2)
    if result["status"] == "failed":
        print(result["traceback"])
        raise SystemExit(1)


if __name__ == "__main__":
    main()
