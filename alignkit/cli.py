"""The ``alignkit`` command: one subcommand per stage.

    alignkit sft --config configs/sft-smollm2-alpaca.yaml --set train.max_steps=10
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

from alignkit.config import SFTConfig, describe, load_config
from alignkit.errors import AlignkitError


@dataclass(frozen=True)
class Stage:
    config: type
    run: Callable
    summary: str


def _run_sft(config: SFTConfig, resume: bool) -> None:
    from alignkit.train.sft import run_sft

    run_sft(config, resume=resume)


STAGES = {
    "sft": Stage(SFTConfig, _run_sft, "Supervised fine-tuning on demonstrations (stage 1 of RLHF)."),
}


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stage = STAGES[args.command]
    try:
        config = load_config(stage.config, args.config, args.set)
        stage.run(config, args.resume)
    except AlignkitError as exc:
        print(f"alignkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
