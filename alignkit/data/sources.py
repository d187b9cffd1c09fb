"""Known datasets by short name, and :func:`load_records`, the one way data enters alignkit.

``load_records(source, kind)`` reads rows (see :mod:`alignkit.data.readers`) and turns each into typed
records of ``kind`` (a key of :data:`~alignkit.data.records.RECORD_TYPES`). A ``source`` that is a
short name in :data:`DATASETS` goes through that dataset's adapter; any other source must already hold
rows in a record type's own form (see each record's ``from_row``).

Known datasets use the local copy under the data root when it is present, and otherwise their public
copy on the Hugging Face hub. The data root is ``$ALIGNKIT_DATA_DIR`` when set, else the first existing
folder of ``./shared/data``, ``../shared/data`` (relative to the working directory) and
``shared/data`` beside the checkout holding the ``alignkit`` package.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from alignkit.data import human_preferences, step_labels
from alignkit.data.arithmetic import arithmetic_rows
from alignkit.data.arithmetic_chains import chain_rows
from alignkit.data.readers import read_hub_rows, read_jsonl_rows, read_rows
from alignkit.data.records import RECORD_TYPES
from alignkit.errors import DataError, RowDropped

log = logging.getLogger(__name__)

Adapter = Callable[[dict, str], list]
"""Turns one raw row (and its location) into a list of records; raises DataError on a bad row."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Where a known dataset lives and how its rows become records.

    ``adapters``: record kind -> adapter.
    ``local``: path under the data root of the local copy, which stands for the split ``local_split``.
    ``hub`` / ``hub_config`` / ``hub_data_dir``: the public copy, for ``datasets.load_dataset``.
    ``local_reader``: how the local copy is read, when :func:`~alignkit.data.readers.read_rows` would
    misread it (a file whose name does not say its format).
    ``generated``: for a synthetic dataset, the ``(location, row)`` pairs of its only split, "train",
    made in code (no local copy, no hub).
    """

    adapters: dict[str, Adapter]
    local: str | None = None
    local_split: str = "train"
    hub: str | None = None
    hub_config: str | None = None
    hub_data_dir: str | None = None
    local_reader: Callable[[Path, list | None], Iterator[tuple[str, dict]]] | None = None
    generated: Callable[[], Iterator[tuple[str, dict]]] | None = None


@dataclasses.dataclass
class LoadedRecords:
    """What :func:`load_records` returns: the records, where each came from (``file:line``, parallel
    to ``records``), the ``(location, reason)`` of skipped (malformed) rows and of dropped rows
    (well-formed rows that give no record by the dataset's rules, see :class:`~alignkit.errors.RowDropped`)."""

    records: list
    skipped: list[tuple[str, str]]
    locations: list[str]
    dropped: list[tuple[str, str]] = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------- alpaca seed tasks


def _alpaca_demonstrations(row: dict, location: str) -> list:
    """One demonstration per instance: instruction (+ blank line + input) as user, output as assistant.

    Accepts seed-task rows (``instruction`` + ``instances: [{input, output}]``) and the flat rows of the
    hub's generated Alpaca set (``instruction``, ``input``, ``output``).
    """
    return [RECORD_TYPES["demonstration"].from_row(
        {"prompt": prompt, "response": _string(instance, "output", location)}, location)
        for prompt, instance in _alpaca_instances(row, location)]


def _alpaca_prompts(row: dict, location: str) -> list:
    """The first instance's request (instruction + blank line + input): an ordinary, harmless request."""
    prompt, _ = _alpaca_instances(row, location)[0]
    return [RECORD_TYPES["prompt"].from_row({"prompt": prompt}, location)]


def _alpaca_instances(row: dict, location: str) -> list[tuple[str, dict]]:
    """(request, instance) of each instance of an Alpaca row; the request is the instruction, then a blank
    line and the instance's input when it has one."""
    instruction = _string(row, "instruction", location)
    instances = row.get("instances", [row])
    if not isinstance(instances, list) or not instances:
        raise DataError(location, "field 'instances' must be a non-empty list of {input, output}")
    requests = []
    for instance in instances:
        if not isinstance(instance, dict):
            raise DataError(location, "each of 'instances' must be an object with 'input' and 'output'")
        given = (instance.get("input") or "").strip()
        requests.append((f"{instruction}\n\n{given}" if given else instruction, instance))
    return requests


def _string(row: dict, name: str, location: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise DataError(location, f"field '{name}' must be a string, got {type(value).__name__}")
    return value


# ---------------------------------------------------------------- Anthropic HH-RLHF

_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):")
_HH_ROLES = {"Human": "user", "Assistant": "assistant"}


def parse_hh_dialogue(text: str, location: str) -> tuple[tuple[dict, ...], str]:
    """Split an HH dialogue ``"\\n\\nHuman: ...\\n\\nAssistant: ..."`` into (prompt messages, final reply).

    The prompt is every turn before the last ``"\\n\\nAssistant:"``; the reply is the stripped text after
    it (possibly empty). Turn texts are stripped. ``Human:``
    inside a turn without the blank line before it is kept as text, as the raters wrote it.
    """
    if not isinstance(text, str):
        raise DataError(location, f"dialogue must be a string, got {type(text).__name__}")
    parts = _HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        raise DataError(
            location, "dialogue must start with 'Human:' (expected '\\n\\nHuman: ...\\n\\nAssistant: ...')"
        )
    roles, texts = parts[1::2], parts[2::2]
    if roles[-1] != "Assistant" or len(roles) < 2:
        raise DataError(
            location, "dialogue must end with an 'Assistant:' turn after at least one 'Human:' turn"
        )
    prompt = tuple(
        {"role": _HH_ROLES[r], "content": t.strip()} for r, t in zip(roles[:-1], texts[:-1], strict=True)
    )
    return prompt, texts[-1].strip()


def _hh_dialogue(row: dict, name: str, location: str) -> tuple[tuple[dict, ...], str]:
    """The parsed dialogue in field ``name``; an empty final reply is an error."""
    if name not in row:
        raise DataError(
            location, f"missing field '{name}' (expected HH-RLHF 'chosen' and 'rejected' dialogues)"
        )
    prompt, reply = parse_hh_dialogue(row[name], location)
    if not reply:
        raise DataError(location, f"{name} reply is empty (expected text after the last 'Assistant:')")
    return prompt, reply


def _hh_pair(row: dict, location: str) -> tuple[tuple[dict, ...], str, str]:
    prompt, chosen = _hh_dialogue(row, "chosen", location)
    rejected_prompt, rejected = _hh_dialogue(row, "rejected", location)
    if prompt != rejected_prompt:
        turn = next(
            (i for i, (a, b) in enumerate(zip(prompt, rejected_prompt, strict=False)) if a != b), None
        )
        turn = min(len(prompt), len(rejected_prompt)) if turn is None else turn
        raise DataError(
            location,
            f"chosen and rejected dialogues differ before the last 'Assistant:' turn (at turn {turn + 1}); "
            "expected them to share every turn but the final reply",
        )
    return prompt, chosen, rejected


def _hh_preferences(row: dict, location: str) -> list:
    prompt, chosen, rejected = _hh_pair(row, location)
    row_out = {"prompt": list(prompt), "chosen": chosen, "rejected": rejected}
    return [RECORD_TYPES["preference"].from_row(row_out, location)]


def _hh_demonstrations(row: dict, location: str) -> list:
    """The chosen dialogue as a chat to imitate."""
    prompt, chosen = _hh_dialogue(row, "chosen", location)
    messages = [*prompt, {"role": "assistant", "content": chosen}]
    return [RECORD_TYPES["demonstration"].from_row({"messages": messages}, location)]


def _hh_unpaired(row: dict, location: str) -> list:
    """Two records per row: the chosen reply is desirable, the rejected one is not."""
    prompt, chosen, rejected = _hh_pair(row, location)
    make = RECORD_TYPES["unpaired"].from_row
    return [
        make({"prompt": list(prompt), "completion": chosen, "desirable": True}, location),
        make({"prompt": list(prompt), "completion": rejected, "desirable": False}, location),
    ]


def _hh_prompts(row: dict, location: str) -> list:
    """The conversation before the final reply (the chosen dialogue's; rejected is not read)."""
    prompt, _ = _hh_dialogue(row, "chosen", location)
    return [RECORD_TYPES["prompt"].from_row({"prompt": list(prompt)}, location)]


# ---------------------------------------------------------------- GSM8K

_CALCULATOR = re.compile(r"<<[^<>]*>>")


def parse_gsm8k_answer(answer: str, location: str) -> tuple[list[str], str]:
    """(steps, final answer) from a GSM8K answer: lines before ``#### `` minus ``<<...>>`` annotations."""
    if not isinstance(answer, str) or "####" not in answer:
        raise DataError(location, "field 'answer' must be a string ending in '#### <final answer>'")
    body, _, final = answer.rpartition("####")
    steps = [_CALCULATOR.sub("", line).strip() for line in body.splitlines()]
    return [s for s in steps if s], final.strip()


def _gsm8k_fields(row: dict, location: str) -> tuple[str, list[str], str]:
    """(question, steps, final answer) of a GSM8K row."""
    for name in ("question", "answer"):
        if row.get(name) is None:
            raise DataError(location, f"missing field '{name}' (expected 'question' and 'answer')")
    steps, final = parse_gsm8k_answer(row["answer"], location)
    return row["question"], steps, final


def _gsm8k_steps(row: dict, location: str) -> list:
    question, steps, final = _gsm8k_fields(row, location)
    row_out = {"prompt": question, "steps": steps, "answer": final}
    return [RECORD_TYPES["steps"].from_row(row_out, location)]


def _gsm8k_prompts(row: dict, location: str) -> list:
    """The question as the prompt, the final answer (after ``####``) as the reference answer."""
    question, _, final = _gsm8k_fields(row, location)
    return [RECORD_TYPES["prompt"].from_row({"prompt": question, "answer": final}, location)]


def _gsm8k_demonstrations(row: dict, location: str) -> list:
    """User: the question; assistant: the steps, one per line, then ``The answer is X.``."""
    question, steps, final = _gsm8k_fields(row, location)
    response = "\n".join(steps) + f"\nThe answer is {final}."
    return [RECORD_TYPES["demonstration"].from_row({"prompt": question, "response": response}, location)]


def _plain_adapter(kind: str) -> Adapter:
    """The adapter for sources that hold rows in the record type's own form (steps: or in any published form
    of step labels, :mod:`alignkit.data.step_labels`)."""
    if kind == "steps":
        return step_labels.step_solutions
    record_type = RECORD_TYPES[kind]
    return lambda row, location: [record_type.from_row(row, location)]


def _arithmetic_demonstrations(row: dict, location: str) -> list:
    """User: the question; assistant: the steps, one per line, then ``The answer is X.``, as GSM8K's."""
    response = "\n".join(row["steps"]) + f"\nThe answer is {row['answer']}."
    return [RECORD_TYPES["demonstration"].from_row({"prompt": row["prompt"], "response": response}, location)]


def _chain_steps(row: dict, location: str) -> list:
    """The shown solution with its gold step labels."""
    return step_labels.step_solutions({"prompt": row["prompt"], "steps": row["shown"], "labels": row["labels"],
                                       "answer": row["answer"]}, location)


def _chain_demonstrations(row: dict, location: str) -> list:
    """User: the question; assistant: the right steps, one per line, then ``The answer is X.``."""
    return [RECORD_TYPES["demonstration"].from_row({"prompt": row["prompt"], "response": _chain_reply(
        row["solution"])}, location)]


def _chain_preferences(row: dict, location: str) -> list:
    """The right solution over the slipped one, each closed by the answer it reached (an outcome reward)."""
    return [RECORD_TYPES["preference"].from_row({"prompt": row["prompt"], "chosen": _chain_reply(row["solution"]),
                                                 "rejected": _chain_reply(row["slipped"])}, location)]


def _chain_reply(steps: list[str]) -> str:
    """The steps, one per line, then ``The answer is X.`` with the last step's result."""
    return "\n".join(steps) + f"\nThe answer is {steps[-1].rsplit('= ', 1)[1]}."


# ---------------------------------------------------------------- AdvBench


def _advbench_prompts(row: dict, location: str) -> list:
    """The harmful request (``goal``) as a prompt; the affirmative ``target`` opening is not used."""
    return [RECORD_TYPES["prompt"].from_row({"prompt": _string(row, "goal", location)}, location)]


# ---------------------------------------------------------------- BIG-Bench Mistake


def _big_bench_mistake(local: str, hub_data_dir: str | None = None) -> DatasetSpec:
    """BIG-Bench Mistake: every task (the folder) or one task's file."""
    return DatasetSpec(local=local, local_split="train", hub="WHGTyen/BIG-Bench-Mistake", hub_data_dir=hub_data_dir,
                       adapters={"steps": step_labels.big_bench_mistake_solutions},
                       local_reader=step_labels.big_bench_mistake_rows)


# ---------------------------------------------------------------- registry

DATASETS: dict[str, DatasetSpec] = {
    # Hub fallback: the seed tasks are a file in the tatsu-lab/stanford_alpaca GitHub repository, not a
    # hub dataset; the nearest hub dataset is the 52K instructions generated from them (same fields).
    "alpaca-seed": DatasetSpec(
        local="alpaca-seed/seed_tasks.jsonl",
        local_split="train",
        hub="tatsu-lab/alpaca",
        adapters={"demonstration": _alpaca_demonstrations, "prompt": _alpaca_prompts},
    ),
    # The local copy holds 7 of every 8 rows of the hub's *test* split; offline it is the project's
    # training data, so it answers split "train". Other splits come from the hub.
    "hh-rlhf-harmless": DatasetSpec(
        local="hh-rlhf/harmless-base.jsonl.gz",
        local_split="train",
        hub="Anthropic/hh-rlhf",
        hub_data_dir="harmless-base",
        adapters={
            "preference": _hh_preferences,
            "demonstration": _hh_demonstrations,
            "unpaired": _hh_unpaired,
            "prompt": _hh_prompts,
        },
    ),
    "gsm8k": DatasetSpec(
        local="gsm8k/train.jsonl.gz",
        local_split="train",
        hub="openai/gsm8k",
        hub_config="main",
        adapters={"steps": _gsm8k_steps, "demonstration": _gsm8k_demonstrations, "prompt": _gsm8k_prompts},
    ),
    # Human preferences beyond HH (alignkit.data.human_preferences). The local copies are the sets'
    # test files; offline they answer split "train". The hub copies are community uploads of the same files.
    "pandalm": DatasetSpec(
        local="pandalm/testset-v1.json",
        local_split="train",
        hub="WeOpenML/PandaLM-testset",
        adapters={"preference": human_preferences.pandalm_preferences},
    ),
    "oasst-en100": DatasetSpec(
        local="oasst-en100/en_100_message.jsonl",
        local_split="train",
        hub="OpenAssistant/oasst1",
        adapters={"ranking": human_preferences.oasst_rankings, "preference": human_preferences.oasst_preferences},
    ),
    "autoj-pairwise": DatasetSpec(
        local="autoj-pairwise/autoj_pairwise.json",
        local_split="train",
        hub="GAIR/autoj-pairwise",
        adapters={"preference": human_preferences.autoj_preferences},
        local_reader=read_jsonl_rows,  # JSON Lines despite the .json name
    ),
    # One-digit arithmetic with known answers and steps (alignkit.data.arithmetic), made in code.
    "arithmetic": DatasetSpec(
        adapters={"prompt": _plain_adapter("prompt"), "steps": _plain_adapter("steps"),
                  "demonstration": _arithmetic_demonstrations},
        generated=arithmetic_rows,
    ),
    # Step-by-step solutions with the first wrong step marked by people (alignkit.data.step_labels).
    "mr-ben": DatasetSpec(
        local="mr-ben/math.json",
        local_split="train",
        hub="Randolphzeng/Mr-Ben",
        adapters={"steps": step_labels.mr_ben_solutions},
        local_reader=step_labels.mr_ben_rows,
    ),
    "big-bench-mistake": _big_bench_mistake("big-bench-mistake"),
    "big-bench-mistake-arithmetic": _big_bench_mistake("big-bench-mistake/multistep_arithmetic.jsonl",
                                                       "multistep_arithmetic"),
    # Chained one-digit arithmetic, shown with one solution whose step labels are known exactly
    # (alignkit.data.arithmetic_chains), made in code.
    "arithmetic-chains": DatasetSpec(
        adapters={"steps": _chain_steps, "prompt": _plain_adapter("prompt"), "demonstration": _chain_demonstrations,
                  "preference": _chain_preferences},
        generated=chain_rows,
    ),
    # Harmful requests for red-teaming (Zou et al. 2023, AdvBench harmful behaviours).
    "advbench": DatasetSpec(
        local="advbench/harmful_behaviors.csv",
        local_split="train",
        hub="walledai/AdvBench",
        adapters={"prompt": _advbench_prompts},
    ),
}


def data_root() -> Path | None:
    """The folder holding local copies of known datasets, or None (see the module doc)."""
    if os.environ.get("ALIGNKIT_DATA_DIR"):
        return Path(os.environ["ALIGNKIT_DATA_DIR"]).expanduser()
    repo_root = Path(__file__).resolve().parents[2]  # the folder holding the alignkit package
    for candidate in (Path("shared/data"), Path("../shared/data"), repo_root.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def _known_rows(name: str, spec: DatasetSpec, split: str, skipped: list | None) -> Iterator[tuple[str, dict]]:
    """Rows of a known dataset: made in code for a synthetic one, else its local copy when present for
    ``split``, else the hub's."""
    if spec.generated is not None:
        if split != "train":
            raise DataError(name, f"a synthetic dataset has only the split 'train', not {split!r}")
        return spec.generated()
    root = data_root()
    local = root / spec.local if root is not None else None
    if local is not None and local.exists() and split == spec.local_split:
        log.info("%s: reading the local copy %s", name, local)
        if spec.local_reader is not None:
            return spec.local_reader(local, skipped)
        return read_rows(str(local), skipped=skipped)
    log.info("%s: no local copy of split %r; loading %s from the Hugging Face hub", name, split, spec.hub)
    return read_hub_rows(spec.hub, split, config=spec.hub_config, data_dir=spec.hub_data_dir)


# ---------------------------------------------------------------- entry point


def load_records(source: str, kind: str, *, split: str = "train", on_error: str = "raise") -> LoadedRecords:
    """Read ``source`` and return its records of ``kind``.

    ``source``: a short name in :data:`DATASETS`, or any form :func:`~alignkit.data.readers.read_rows`
    accepts. ``kind``: a key of ``RECORD_TYPES``. ``on_error="raise"`` stops at the first bad row with a
    DataError naming it; ``"skip"`` leaves bad rows (and malformed jsonl lines) out and lists them in
    ``skipped``. Raises DataError when no record is left.
    """
    if kind not in RECORD_TYPES:
        raise DataError(source, f"unknown record kind {kind!r} (expected one of {', '.join(RECORD_TYPES)})")
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    skipped: list[tuple[str, str]] = []
    row_skips = skipped if on_error == "skip" else None
    if source in DATASETS:
        spec = DATASETS[source]
        if kind not in spec.adapters:
            raise DataError(source, f"provides {' or '.join(map(repr, spec.adapters))} records, not {kind!r}")
        adapter, rows = spec.adapters[kind], _known_rows(source, spec, split, row_skips)
    else:
        adapter, rows = _plain_adapter(kind), read_rows(source, split, skipped=row_skips)
    records: list = []
    locations: list[str] = []
    dropped: list[tuple[str, str]] = []
    for location, row in rows:
        try:
            made = adapter(row, location)
            records.extend(made)
            locations.extend([location] * len(made))
        except RowDropped as exc:
            dropped.append((exc.location, exc.problem))
        except DataError as exc:
            if on_error == "raise":
                raise
            skipped.append((exc.location, exc.problem))
    if not records:
        first = f"; first skipped: {skipped[0][0]}: {skipped[0][1]}" if skipped else ""
        dropped_note = f", {len(dropped)} dropped by the dataset's rules" if dropped else ""
        raise DataError(source, f"no {kind} records ({len(skipped)} rows skipped{dropped_note}{first})")
    return LoadedRecords(records=records, skipped=skipped, locations=locations, dropped=dropped)
