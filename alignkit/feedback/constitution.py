"""Constitutions: the principles (and optional few-shot examples) that AI feedback is asked under.

A principle has a name and up to three texts: a critique request and a revision request (used together by
``alignkit cai revise``) and a comparison question (``alignkit cai label``). A constitution is read from:

- ``default``: alignkit's own, ``alignkit/feedback/constitution.yaml``;
- ``cai-paper``: the prompts published with Bai et al. 2022, "Constitutional AI: Harmlessness from AI
  Feedback", in the data folder's ``cai/`` (see :func:`~alignkit.data.sources.data_root`);
- a folder holding those JSON files (``CritiqueRevisionInstructions.json``, ``RLMadisonInstructions.json``
  and, optionally, ``CritiqueRevisionFewShotPrompts.json`` and ``RLMadisonFewShotPrompts.json``);
- a YAML file of this shape (every text non-blank; unknown keys are errors)::

      name: my-constitution                 # optional
      principles:                           # at least one
        - name: harmless                    # unique
          critique_request: ...             # critique_request and revision_request together, or neither
          revision_request: ...
          comparison: ...                   # optional (a principle needs a critique pair or a comparison)
      critique_examples:                    # optional few-shot critique -> revision examples
        - prompt: ...                       # a string (one user turn) or a list of chat messages
          response: ...
          principle: harmless               # its requests; or give critique_request and revision_request
          critique: ...
          revision: ...
      comparison_examples:                  # optional few-shot comparisons
        - prompt: ...
          better: ...
          worse: ...

Every problem raises :class:`ConstitutionError` naming the file and the key (``principles[2].comparison``).
Which principle an example gets is drawn by :func:`draw_principles`, seeded per example.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import random
import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from alignkit.data.records import as_messages
from alignkit.data.sources import data_root
from alignkit.errors import AlignkitError, DataError

DEFAULT = "default"
PAPER = "cai-paper"
PAPER_FILES = {
    "critiques": "CritiqueRevisionInstructions.json",
    "critique_examples": "CritiqueRevisionFewShotPrompts.json",
    "comparisons": "RLMadisonInstructions.json",
    "comparison_examples": "RLMadisonFewShotPrompts.json",
}


class ConstitutionError(AlignkitError):
    """A constitution file is missing, malformed, or lacks what a command needs."""


@dataclasses.dataclass(frozen=True)
class Principle:
    """One principle; a text it lacks is None."""

    name: str
    critique_request: str | None = None
    revision_request: str | None = None
    comparison: str | None = None


@dataclasses.dataclass(frozen=True)
class ComparisonExample:
    """A few-shot comparison: the conversation before the replies, and the better and worse reply."""

    prompt: tuple[dict, ...]
    better: str
    worse: str


@dataclasses.dataclass(frozen=True)
class Constitution:
    """Principles and few-shot examples. A critique example is a whole chat: the prompt, the reply, the
    critique request, the critique, the revision request and the revision, as alternating turns."""

    name: str
    source: str
    principles: tuple[Principle, ...]
    critique_examples: tuple[tuple[dict, ...], ...] = ()
    comparison_examples: tuple[ComparisonExample, ...] = ()

    def for_revision(self) -> tuple[Principle, ...]:
        """The principles with a critique and a revision request; ConstitutionError when there are none."""
        found = tuple(p for p in self.principles if p.critique_request is not None)
        if not found:
            raise ConstitutionError(f"{self.source}: no principle has a critique_request and revision_request "
                                    "(needed by cai revise)")
        return found

    def for_comparison(self) -> tuple[Principle, ...]:
        """The principles with a comparison question; ConstitutionError when there are none."""
        found = tuple(p for p in self.principles if p.comparison is not None)
        if not found:
            raise ConstitutionError(f"{self.source}: no principle has a comparison question (needed by cai label)")
        return found

    def critique_shots(self, count: int) -> tuple[tuple[dict, ...], ...]:
        """The first ``count`` critique examples; ConstitutionError when there are fewer."""
        return _first(self.critique_examples, count, "critique_examples", "revise.few_shot", self.source)

    def comparison_shots(self, count: int) -> tuple[ComparisonExample, ...]:
        """The first ``count`` comparison examples; ConstitutionError when there are fewer."""
        return _first(self.comparison_examples, count, "comparison_examples", "label.few_shot", self.source)


def _first(examples: tuple, count: int, what: str, key: str, source: str) -> tuple:
    if count > len(examples):
        raise ConstitutionError(f"{key} is {count} but {source} has {len(examples)} {what}")
    return examples[:count]


def draw_principles(principles: tuple[Principle, ...], seed: int, index: int, count: int) -> list[Principle]:
    """``count`` principles drawn uniformly with replacement for example ``index``.

    The draw depends only on ``(seed, index)`` (a string-seeded ``random.Random``, the same on every
    machine and Python process), so an example gets the same principles whatever else is in the run."""
    rng = random.Random(f"alignkit-constitution:{seed}:{index}")
    return [rng.choice(principles) for _ in range(count)]


# ---------------------------------------------------------------- loading


def load_constitution(source: str) -> Constitution:
    """The constitution named by ``source`` (see the module doc for the forms)."""
    if source == DEFAULT:
        text = resources.files("alignkit.feedback").joinpath("constitution.yaml").read_text(encoding="utf-8")
        return parse_constitution(_yaml(text, "alignkit/feedback/constitution.yaml"),
                                  "alignkit/feedback/constitution.yaml")
    if source == PAPER:
        root = data_root()
        if root is None or not (root / "cai").is_dir():
            raise ConstitutionError(f"constitution '{PAPER}': no cai/ folder in the data folder ({root}); set "
                                    "ALIGNKIT_DATA_DIR or give the folder holding the paper's JSON files")
        return load_paper_constitution(root / "cai")
    path = Path(source).expanduser()
    if path.is_dir():
        return load_paper_constitution(path)
    if path.is_file():
        return parse_constitution(_yaml(path.read_text(encoding="utf-8"), str(path)), str(path))
    raise ConstitutionError(f"constitution '{source}': no such file or folder (expected '{DEFAULT}', '{PAPER}', "
                            "a folder of the paper's JSON prompts, or a YAML constitution file)")


def _yaml(text: str, where: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConstitutionError(f"{where}: not valid YAML: {exc}") from None


def parse_constitution(raw: Any, where: str) -> Constitution:
    """A validated constitution from the plain data of a YAML file (see the module doc)."""
    _keys(raw, "", {"name", "principles", "critique_examples", "comparison_examples"}, where)
    principles = tuple(_principle(item, f"principles[{i}]", where) for i, item in
                       enumerate(_list(raw, "principles", where, required=True)))
    names = [p.name for p in principles]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise ConstitutionError(f"{where}: principles[{i}].name: '{name}' is used twice (expected unique names)")
    by_name = dict(zip(names, principles, strict=True))
    critiques = tuple(_critique_example(item, f"critique_examples[{i}]", where, by_name) for i, item in
                      enumerate(_list(raw, "critique_examples", where)))
    comparisons = tuple(_comparison_example(item, f"comparison_examples[{i}]", where) for i, item in
                        enumerate(_list(raw, "comparison_examples", where)))
    name = _text(raw, "name", "", where) if raw.get("name") is not None else Path(where).stem
    return Constitution(name, where, principles, critiques, comparisons)


def _keys(raw: Any, key: str, allowed: set[str], where: str) -> None:
    """``raw`` is a mapping whose keys are all in ``allowed``; else an error naming ``key``."""
    if not isinstance(raw, dict):
        raise ConstitutionError(f"{where}: {key or 'the top level'}: expected a mapping, got {raw!r:.60}")
    prefix = f"{key}." if key else ""
    for name in raw:
        if name not in allowed:
            close = difflib.get_close_matches(str(name), allowed, n=1, cutoff=0.5)
            hint = f"; did you mean '{prefix}{close[0]}'?" if close else f"; valid keys: {', '.join(sorted(allowed))}"
            raise ConstitutionError(f"{where}: unknown key '{prefix}{name}'{hint}")


def _list(raw: dict, key: str, where: str, required: bool = False) -> list:
    value = raw.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list) or (required and not value):
        raise ConstitutionError(f"{where}: {key}: expected a non-empty list, got {value!r:.60}")
    return value


def _text(raw: dict, key: str, prefix: str, where: str) -> str:
    """``raw[key]``, a non-blank string (stripped)."""
    value = raw.get(key)
    full = f"{prefix}.{key}" if prefix else key
    if value is None:
        raise ConstitutionError(f"{where}: {full}: missing (expected non-blank text)")
    if not isinstance(value, str) or not value.strip():
        raise ConstitutionError(f"{where}: {full}: expected non-blank text, got {value!r:.60}")
    return value.strip()


def _optional_text(raw: dict, key: str, prefix: str, where: str) -> str | None:
    return None if raw.get(key) is None else _text(raw, key, prefix, where)


def _principle(raw: Any, key: str, where: str) -> Principle:
    _keys(raw, key, {"name", "critique_request", "revision_request", "comparison"}, where)
    name = _text(raw, "name", key, where)
    critique = _optional_text(raw, "critique_request", key, where)
    revision = _optional_text(raw, "revision_request", key, where)
    comparison = _optional_text(raw, "comparison", key, where)
    if (critique is None) != (revision is None):
        missing = "revision_request" if revision is None else "critique_request"
        raise ConstitutionError(f"{where}: {key}.{missing}: missing (critique_request and revision_request "
                                "go together)")
    if critique is None and comparison is None:
        raise ConstitutionError(f"{where}: {key}: has neither critique_request/revision_request nor comparison")
    return Principle(name, critique, revision, comparison)


def _messages(raw: dict, key: str, prefix: str, where: str) -> tuple[dict, ...]:
    if raw.get(key) is None:
        raise ConstitutionError(f"{where}: {prefix}.{key}: missing (expected a string or a list of messages)")
    try:
        return as_messages(raw[key], f"{where}: {prefix}", key)
    except DataError as exc:
        raise ConstitutionError(str(exc)) from None


def _critique_example(raw: Any, key: str, where: str, principles: dict[str, Principle]) -> tuple[dict, ...]:
    fields = {"prompt", "response", "principle", "critique_request", "critique", "revision_request", "revision"}
    _keys(raw, key, fields, where)
    prompt = _messages(raw, "prompt", key, where)
    if raw.get("principle") is not None:
        name = _text(raw, "principle", key, where)
        principle = principles.get(name)
        if principle is None or principle.critique_request is None:
            raise ConstitutionError(f"{where}: {key}.principle: '{name}' is not a principle with a critique "
                                    f"request (expected one of {', '.join(principles)})")
        critique_request, revision_request = principle.critique_request, principle.revision_request
    else:
        critique_request = _text(raw, "critique_request", key, where)
        revision_request = _text(raw, "revision_request", key, where)
    turns = [("assistant", _text(raw, "response", key, where)), ("user", critique_request),
             ("assistant", _text(raw, "critique", key, where)), ("user", revision_request),
             ("assistant", _text(raw, "revision", key, where))]
    return prompt + tuple({"role": role, "content": content} for role, content in turns)


def _comparison_example(raw: Any, key: str, where: str) -> ComparisonExample:
    _keys(raw, key, {"prompt", "better", "worse"}, where)
    return ComparisonExample(_messages(raw, "prompt", key, where), _text(raw, "better", key, where),
                             _text(raw, "worse", key, where))


# ---------------------------------------------------------------- the paper's published prompts

_MARKER = re.compile(r"\n\n(Human|Assistant|CritiqueRequest|Critique|RevisionRequest|Revision):")
_MARKER_ROLES = {"Human": "user", "Assistant": "assistant", "CritiqueRequest": "user", "Critique": "assistant",
                 "RevisionRequest": "user", "Revision": "assistant"}


def load_paper_constitution(folder: Path) -> Constitution:
    """The Constitutional AI paper's prompts from ``folder``: its 16 critique/revision principles (named by
    their keys) and 16 comparison questions (``comparison0`` ...), with the few-shot files when present."""
    files = {key: folder / name for key, name in PAPER_FILES.items()}
    if not files["critiques"].is_file() and not files["comparisons"].is_file():
        raise ConstitutionError(f"{folder}: holds neither {PAPER_FILES['critiques']} nor "
                                f"{PAPER_FILES['comparisons']} (expected the Constitutional AI paper's prompts)")
    loaded = {key: _json(path) for key, path in files.items() if path.is_file()}
    principles = _paper_critiques(loaded.get("critiques", {}), files["critiques"])
    comparisons = loaded.get("comparisons", [])
    if not isinstance(comparisons, list):
        raise ConstitutionError(f"{files['comparisons']}: expected a list of question strings")
    for i, question in enumerate(comparisons):
        if not isinstance(question, str) or not question.strip():
            raise ConstitutionError(f"{files['comparisons']}: [{i}]: expected non-blank text, got {question!r:.60}")
        text = question.strip().removesuffix("Options:").strip()
        principles.append(Principle(f"comparison{i}", comparison=text))
    critique_examples = loaded.get("critique_examples", [])
    if not isinstance(critique_examples, list):
        raise ConstitutionError(f"{files['critique_examples']}: expected a list of dialogue strings")
    shots = tuple(_paper_dialogue(text, f"{files['critique_examples']}: [{i}]")
                  for i, text in enumerate(critique_examples))
    compared = _paper_comparisons(loaded.get("comparison_examples", []), files["comparison_examples"])
    return Constitution(PAPER, str(folder), tuple(principles), shots, compared)


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConstitutionError(f"{path}: cannot read it as JSON ({exc})") from None


def _paper_critiques(raw: Any, path: Path) -> list[Principle]:
    """``{"name": {"prompt": ["...CritiqueRequest: ...Critique:"], "edit_request": "...RevisionRequest: ..."}}``."""
    if not isinstance(raw, dict):
        raise ConstitutionError(f"{path}: expected a mapping of principle names to requests")
    principles = []
    for name, entry in raw.items():
        if not isinstance(entry, dict):
            raise ConstitutionError(f"{path}: '{name}': expected a mapping with 'prompt' and 'edit_request'")
        prompt = entry.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str) or not prompt.strip():
            raise ConstitutionError(f"{path}: '{name}'.prompt: missing (expected the critique request text)")
        edit = entry.get("edit_request")
        if not isinstance(edit, str) or not edit.strip():
            raise ConstitutionError(f"{path}: '{name}'.edit_request: missing (expected the revision request text)")
        principles.append(Principle(str(name), _strip_markers(prompt, "CritiqueRequest", "Critique"),
                                    _strip_markers(edit, "RevisionRequest", "Revision")))
    return principles


def _strip_markers(text: str, opening: str, closing: str) -> str:
    """``"\\n\\nCritiqueRequest: Identify ...\\n\\nCritique:"`` -> ``"Identify ..."``."""
    text = text.strip().removeprefix(f"{opening}:").strip()
    return text.removesuffix(f"{closing}:").strip()


def _paper_dialogue(text: Any, where: str, last: str = "assistant") -> tuple[dict, ...]:
    """A ``"\\n\\nHuman: ...\\n\\nAssistant: ...\\n\\nCritiqueRequest: ..."`` dialogue as chat messages
    (turns left empty, such as a closing ``"Human:"``, are dropped); it must start with a user turn and end
    with a ``last`` one."""
    if not isinstance(text, str):
        raise ConstitutionError(f"{where}: expected a dialogue string")
    parts = _MARKER.split("\n\n" + text.lstrip("\n"))
    messages = [{"role": _MARKER_ROLES[marker], "content": content.strip()}
                for marker, content in zip(parts[1::2], parts[2::2], strict=True) if content.strip()]
    if not messages or messages[0]["role"] != "user" or messages[-1]["role"] != last:
        raise ConstitutionError(f"{where}: expected a dialogue from 'Human:' to a final {last} turn")
    return tuple(messages)


def _paper_comparisons(raw: Any, path: Path) -> tuple[ComparisonExample, ...]:
    """``[{"prompt": "\\n\\nHuman: ...\\n\\nAssistant:", "corrects": [...], "incorrects": [...]}]``: one example
    per (correct, incorrect) pair."""
    if not isinstance(raw, list):
        raise ConstitutionError(f"{path}: expected a list of {{prompt, corrects, incorrects}}")
    examples = []
    for i, entry in enumerate(raw):
        where = f"{path}: [{i}]"
        if not isinstance(entry, dict):
            raise ConstitutionError(f"{where}: expected a mapping with prompt, corrects and incorrects")
        prompt = entry.get("prompt")
        if not isinstance(prompt, str):
            raise ConstitutionError(f"{where}.prompt: missing (expected a 'Human: ... Assistant:' dialogue)")
        messages = _paper_dialogue(prompt, f"{where}.prompt", last="user")
        for key in ("corrects", "incorrects"):
            value = entry.get(key)
            if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
                raise ConstitutionError(f"{where}.{key}: expected a non-empty list of replies")
        examples += [ComparisonExample(messages, better.strip(), worse.strip())
                     for better in entry["corrects"] for worse in entry["incorrects"]]
    return tuple(examples)
