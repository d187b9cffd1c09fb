"""``alignkit cai``: AI feedback with a constitution.

    alignkit cai revise --config configs/cai-revise-smollm2-hh.yaml [--set revise.rounds=2]
    alignkit cai label  --config configs/cai-label-smollm2-hh.yaml [--set label.chain_of_thought=true]
    alignkit cai revise --help      # every config key with its type, default and meaning
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from alignkit.config import load_config
from alignkit.feedback.config import CAILabelConfig, CAIReviseConfig

COMMANDS = {
    "revise": (CAIReviseConfig, "Constitutional AI, supervised phase: sample replies, critique and revise them under "
               "sampled principles; write an SFT dataset of revisions and (initial, revised) preference pairs."),
    "label": (CAILabelConfig, "RLAIF: label preference pairs with a feedback model's option probabilities under "
              "sampled principles (both orders averaged); write soft-labelled pairs and agreement figures."),
}


def add_cai_commands(commands, options_help: Callable[[type], str]) -> None:
    """Register ``cai`` and its subcommands on the top-level subparsers ``commands``; ``options_help`` makes
    the epilog listing a config class's keys."""
    cai = commands.add_parser("cai", help="AI feedback: Constitutional AI revisions and RLAIF preference labels.")
    kinds = cai.add_subparsers(dest="cai_command", required=True, metavar="COMMAND")
    for name, (config_cls, summary) in COMMANDS.items():
        sub = kinds.add_parser(name, help=summary, description=summary, epilog=options_help(config_cls),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("--config", metavar="FILE.yaml", help="YAML config; unset keys take their defaults.")
        sub.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="Override one key, e.g. revise.rounds=2.")


def run_cai(args) -> None:
    config_cls, _ = COMMANDS[args.cai_command]
    config = load_config(config_cls, args.config, args.set)
    if args.cai_command == "revise":
        from alignkit.feedback.revise import run_cai_revise

        run_cai_revise(config)
    else:
        from alignkit.feedback.rlaif import run_cai_label

        run_cai_label(config)
