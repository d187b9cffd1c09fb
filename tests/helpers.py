"""Small data builders shared by the tests."""

import gzip
import json
import random

WORDS = [
    "river", "stone", "cloud", "paper", "music", "garden", "window", "letter", "bridge", "candle", "forest", "silver"
]


def planted_pairs(n: int, seed: int = 0) -> list[dict]:
    """Chosen responses contain the word 'banana'; rejected ones do not. Otherwise alike."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        prompt = "Tell me about " + rng.choice(WORDS)
        base = [rng.choice(WORDS) for _ in range(rng.randint(4, 9))]
        chosen = list(base)
        chosen.insert(rng.randrange(len(chosen) + 1), "banana")
        rows.append({"prompt": prompt, "chosen": " ".join(chosen), "rejected": " ".join(base + [rng.choice(WORDS)])})
    return rows


def write_jsonl(path, rows):
    """``rows`` as JSON lines at ``path`` (gzip-compressed when the name ends in .gz); returns the path."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as out:
        out.write("".join(json.dumps(row) + "\n" for row in rows))
    return path
