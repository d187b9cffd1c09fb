"""The throughput harness (benchmarks/run.py): the smoke suite runs alignkit workloads on a tiny model and writes
JSON with every field the report needs; the Markdown section is replaced between its markers; without TRL its
side is skipped with a note. None of this needs trl."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import report, run
from benchmarks.report import markers, replace_section

REPO = Path(__file__).resolve().parents[1]
STEP_FIELDS = {"seconds", "real_tokens", "padded_tokens", "generated_tokens", "peak_rss_mb"}
SUMMARY_FIELDS = {"median_step_seconds", "real_tokens_per_second", "padded_tokens_per_second", "peak_rss_mb",
                  "real_tokens_per_step", "padded_tokens_per_step"}


def test_the_smoke_suite_writes_every_field(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "benchmarks.run", "--suite", "smoke", "--only", "sft,dpo_lora",
           "--toolkit", "alignkit", "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())

    assert results["suite"] == "smoke"
    assert results["command"].startswith("python -m benchmarks.run --suite smoke --only sft,dpo_lora")
    assert {"torch", "transformers", "trl", "peft", "alignkit"} <= set(results["versions"])
    assert {"cpu", "logical_cores", "threads", "ram_gb"} <= set(results["machine"])
    assert results["settings"]["warmup"] == 1 and results["settings"]["steps"] == 1
    assert [(r["workload"], r["toolkit"], r["status"]) for r in results["runs"]] == [
        ("sft", "alignkit", "ok"), ("dpo_lora", "alignkit", "ok")]
    for r in results["runs"]:
        assert len(r["steps"]) == 2 and all(set(step) >= STEP_FIELDS for step in r["steps"])
        assert set(r["summary"]) >= SUMMARY_FIELDS
        assert r["summary"]["real_tokens_per_step"] == r["info"]["expected_real_tokens_per_step"]
        assert r["summary"]["real_tokens_per_step"] > 0 and r["summary"]["padded_tokens_per_step"] > 0
        if r["workload"] == "sft":  # (DPO computes each pair's prompt once: fewer positions than tokens)
            assert r["summary"]["real_tokens_per_step"] <= r["summary"]["padded_tokens_per_step"]
        assert r["threads"] == 1 and r["matmul_gflops"] > 0 and r["roofline_fraction"] > 0
        assert 0 < r["parameters"]["non_embedding"] < r["parameters"]["total"]
    assert [row["workload"] for row in results["summary"]] == ["sft", "dpo_lora"]

    section = out.with_suffix(".md").read_text()  # the smoke suite leaves RESULTS.md alone
    start, end = markers("smoke")
    assert section.count(start) == 1 and section.count(end) == 1
    assert "| sft | alignkit |" in section and "| dpo_lora | alignkit |" in section


def test_a_section_is_appended_then_replaced_in_place():
    start, end = markers("cpu")
    document = "# Measured results\n\nSome figures.\n"
    once = replace_section(document, "cpu", "first")
    assert once == f"# Measured results\n\nSome figures.\n\n{start}\nfirst\n{end}\n"

    around = f"intro\n\n{once}\n## Later section\n\n" + replace_section("", "smoke", "tiny")
    twice = replace_section(around, "cpu", "second\nwith two lines")
    assert f"{start}\nsecond\nwith two lines\n{end}" in twice
    assert "first" not in twice
    assert twice.startswith("intro\n\n# Measured results") and "## Later section" in twice
    assert f"{markers('smoke')[0]}\ntiny\n{markers('smoke')[1]}" in twice  # another suite's section is kept
    assert replace_section(twice, "cpu", "second\nwith two lines") == twice


@pytest.mark.parametrize("document", ["<!-- bench:cpu:start -->\nno end", "<!-- bench:cpu:end -->\n"
                                      "<!-- bench:cpu:start -->"])
def test_a_broken_section_is_refused(document):
    with pytest.raises(ValueError, match="broken 'cpu' section"):
        replace_section(document, "cpu", "body")


def test_write_section_creates_or_updates_the_file(tmp_path):
    path = tmp_path / "RESULTS.md"
    report.write_section(path, "cpu", "one")
    report.write_section(path, "cpu", "two")
    start, end = markers("cpu")
    assert path.read_text() == f"{start}\ntwo\n{end}\n"


def fake_run(workload, toolkit, repeat, tokens_per_second, status="ok"):
    if status != "ok":
        return {"workload": workload, "toolkit": toolkit, "repeat": repeat, "status": status,
                "note": "not available in TRL 1.16.0"}
    summary = {"median_step_seconds": 100 / tokens_per_second, "real_tokens_per_second": tokens_per_second,
               "padded_tokens_per_second": 1.5 * tokens_per_second, "real_tokens_per_step": 100,
               "padded_tokens_per_step": 150, "peak_rss_mb": 2048.0}
    return {"workload": workload, "toolkit": toolkit, "repeat": repeat, "status": "ok", "summary": summary,
            "matmul_gflops": 60.0, "roofline_fraction": 0.5, "flops_per_token_coefficient": 6,
            "parameters": {"total": 134_515_008, "non_embedding": 106_203_264}}


def test_ratios_and_the_markdown_table_from_runs():
    runs = [fake_run("sft", "alignkit", 0, 40.0), fake_run("sft", "trl", 0, 32.0),
            fake_run("sft", "alignkit", 1, 30.0), fake_run("sft", "trl", 1, 30.0),
            fake_run("ppo", "alignkit", 0, 20.0), fake_run("ppo", "trl", 0, 0, status="not_available")]
    assert report.pair_ratios(runs) == {"sft": [1.25, 1.0], "ppo": [None]}
    summary = report.summarise(runs)
    assert [(r["workload"], r["toolkit"], r["status"]) for r in summary] == [
        ("sft", "alignkit", "ok"), ("sft", "trl", "ok"), ("ppo", "alignkit", "ok"), ("ppo", "trl", "not_available")]
    assert summary[0]["real_tokens_per_second"] == 35.0 and summary[0]["runs"] == 2
    results = {"suite": "cpu", "command": "python -m benchmarks.run --suite cpu", "created": "2026-01-01T00:00:00",
               "json": "benchmarks/results/cpu.json", "versions": report.versions(), "machine": report.machine(2),
               "settings": {"model": "smollm2-135m", "warmup": 1, "steps": 3, "repeats": 2, "matmul_size": 2048},
               "skipped": [], "summary": summary, "ratios": report.pair_ratios(runs)}
    text = report.markdown(results)
    assert "    python -m benchmarks.run --suite cpu" in text
    assert "N = 106.2M non-embedding parameters" in text
    assert "| sft | alignkit | 2.92 | 35.0 | 52.5 | 2.00 GB | 0.50" in text
    assert "| ppo | TRL | not available in TRL 1.16.0 |" in text
    assert "| sft | 1.25, 1.00 |" in text and "| ppo | - |" not in text  # no ratio without a TRL run


def test_without_trl_its_side_is_skipped_with_a_note(tmp_path, monkeypatch):
    real_find_spec = run.importlib.util.find_spec
    monkeypatch.setattr(run.importlib.util, "find_spec", lambda name, *a: None if name == "trl" else
                        real_find_spec(name, *a))
    monkeypatch.setattr(run, "_build_tiny_model", lambda folder: "unused")
    out = tmp_path / "bench.json"
    assert run.main(["--suite", "smoke", "--only", "sft", "--toolkit", "trl", "--out", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["runs"] == []
    assert results["skipped"] == ["TRL's side was skipped: trl is not installed (pip install -e '.[bench]')."]
    assert "trl is not installed" in out.with_suffix(".md").read_text()


def test_tokens_trained_counts_the_epochs_or_the_pairs_a_cut_short_run_consumed():
    from benchmarks.trl_budget import tokens_trained

    assert tokens_trained(1000, pairs=10, epochs=2, steps=6, batch_size=4, cut_short=False) == 2000
    assert tokens_trained(1000, pairs=10, epochs=2, steps=3, batch_size=4, cut_short=True) == 1200


def test_the_time_budget_stops_trl_after_the_step_that_spends_it_but_not_after_the_last():
    from transformers import TrainerControl, TrainerState

    from benchmarks.trl_budget import TimeBudget

    spent, ample = TimeBudget(0.0), TimeBudget(3600.0)
    for budget, step, stops in ((ample, 1, False), (spent, 5, False), (spent, 1, True)):
        control = TrainerControl()
        budget.on_step_end(None, TrainerState(global_step=step, max_steps=5), control)
        assert (control.should_training_stop, budget.stopped) == (stops, stops)
