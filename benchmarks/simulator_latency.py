"""How long the annotation app's simulator takes on the default model: sampling three responses, and
one submission (reward-model steps on the ranking plus the simulated DPO step).

    python benchmarks/simulator_latency.py [--model smollm2-135m] [--repeats 3]

Prints the load time and, per call, the median and the slowest of ``--repeats`` calls after one warm-up.
"""

import argparse
import statistics
import time

import torch

from alignkit.annotate.simulator import Simulator

PROMPT = "How do I keep basil alive indoors?"


def timed(call, repeats: int) -> list[float]:
    call()  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    start = time.perf_counter()
    simulator = Simulator(args.model)
    print(f"load: {time.perf_counter() - start:.1f} s (torch threads: {torch.get_num_threads()})")
    responses = simulator.sample(PROMPT, 3)
    for name, call in (("sample 3 responses (48 new tokens)", lambda: simulator.sample(PROMPT, 3)),
                       ("submit a ranking", lambda: simulator.update(PROMPT, responses, [1, 3, 2]))):
        seconds = timed(call, args.repeats)
        print(f"{name}: median {statistics.median(seconds):.2f} s, slowest {max(seconds):.2f} s")


if __name__ == "__main__":
    main()
