"""Time of one KV-cached decoding step of the default model by batch size (float32, CPU threads as set).

A step reads every weight once whatever the batch, so on a CPU the cost per generated token falls
steeply with the batch: RL collectors should sample all completions of an iteration in one batch.

    python benchmarks/decode_step.py [--batch-sizes 1 8 32 64 128] [--prompt-tokens 64] [--steps 5]
"""

import argparse
import time

import torch

from alignkit.config import ModelConfig
from alignkit.models.loading import load_model_and_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8, 32, 64, 128])
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    args = parser.parse_args()
    model, _ = load_model_and_tokenizer(ModelConfig(name="smollm2-135m"), "cpu")
    model.eval()
    print(f"threads {torch.get_num_threads()}; prompt {args.prompt_tokens} tokens\nbatch | ms/step | tokens/s")
    with torch.no_grad():
        for batch in args.batch_sizes:
            ids = torch.randint(1000, 5000, (batch, args.prompt_tokens), generator=torch.Generator().manual_seed(0))
            out = model(ids, use_cache=True)
            cache, last = out.past_key_values, ids[:, -1:]
            began = time.perf_counter()
            for _ in range(args.steps):
                cache = model(last, past_key_values=cache, use_cache=True).past_key_values
            seconds = (time.perf_counter() - began) / args.steps
            print(f"{batch} | {seconds * 1000:.0f} | {batch / seconds:.0f}")


if __name__ == "__main__":
    main()
