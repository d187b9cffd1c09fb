"""``alignkit pipeline``: every stage of RLHF from one config.

    alignkit pipeline --config configs/quickstart.yaml [--set ppo.rl.iterations=5]
    alignkit pipeline --help      # every config key with its type, default and meaning
"""

from __future__ import annotations

import argparse
import textwrap
from collections.abc import Callable

from alignkit.config import load_config
from alignkit.pipeline.config import PipelineConfig

SUMMARY = ("SFT, then a reward model and PPO from the SFT model, DPO beside PPO, then the reward model's accuracy "
           "and the PPO and DPO policies' win rates over SFT. Finished stage folders are reused, half-finished "
           "ones resume from their last checkpoint.")


def add_pipeline_command(commands, options_help: Callable[[type], str]) -> None:
    """Register ``pipeline`` on the top-level subparsers ``commands``; ``options_help`` makes the epilog
    listing a config class's keys."""
    wired = "; ".join(f"{key} = output_dir/{relative}" for key, relative in PipelineConfig.WIRED.items())
    description = textwrap.fill(f"{SUMMARY} Set from output_dir (setting them is an error): {wired}.", width=90)
    sub = commands.add_parser("pipeline", help=SUMMARY, description=description, epilog=options_help(PipelineConfig),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub.add_argument("--config", metavar="FILE.yaml", help="YAML pipeline config; unset keys take their defaults.")
    sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                     help="Override one key, e.g. ppo.rl.iterations=5.")


def run_pipeline_command(args) -> None:
    from alignkit.pipeline.run import run_pipeline

    run_pipeline(load_config(PipelineConfig, args.config, args.set))
