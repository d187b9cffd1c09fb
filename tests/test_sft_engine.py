"""SFT through the engine on a tiny random model: the run folder, exact resume, NaN stop, two processes."""

import json
import os
import subprocess
import sys

import pytest
import torch
from helpers import assert_same_curves
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from alignkit.cli import main
from alignkit.config import SFTConfig, load_config
from alignkit.errors import TrainingDiverged
from alignkit.train import engine as engine_module
from alignkit.train.sft import run_sft

TIMING_KEYS = {"tokens_per_second"}


def tiny_config(model_dir, out, *extra):
    return load_config(
        SFTConfig,
        None,
        [
            f"output_dir={out}",
            f"model.name={model_dir}",
            "data.train=alpaca-seed",
            "data.max_examples=32",
            "data.max_length=256",
            "data.on_error=skip",
            "train.batch_size=8",
            "train.micro_batch_size=2",
            "train.learning_rate=1e-3",
            "train.max_steps=6",
            "train.warmup_steps=1",
            *extra,
        ],
    )


def losses(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def weights(run_dir):
    return load_file(str(run_dir / "model" / "model.safetensors"))


def test_run_folder_contract_and_learning(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    result = run_sft(tiny_config(tiny_model_dir, out, "train.eval_every=3"))
    assert {"model", "metrics.jsonl", "eval.json", "config.yaml"} <= {p.name for p in out.iterdir()}
    report = json.loads((out / "eval.json").read_text())
    assert {"eval_loss", "eval_token_accuracy", "initial_eval_loss"} <= set(report)
    assert report["eval_loss"] < report["initial_eval_loss"]
    assert result.last_loss < result.first_loss
    logged = losses(out)
    assert [r["step"] for r in logged] == [0, 1, 2, 3, 4, 5, 6]
    assert "eval_loss" in logged[3] and "grad_norm" in logged[1] and "lr" in logged[1]
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.config.num_hidden_layers == 2


def test_resume_matches_uninterrupted_run_exactly(tiny_model_dir, tmp_path, monkeypatch):
    straight = tmp_path / "straight"
    run_sft(tiny_config(tiny_model_dir, straight))

    interrupted = tmp_path / "interrupted"
    original = engine_module.Engine._optimizer_step

    def crash_at_step_5(self, row_batches, step):
        if step == 4:  # after the checkpoint at step 3 and one more logged step
            raise KeyboardInterrupt
        return original(self, row_batches, step)

    monkeypatch.setattr(engine_module.Engine, "_optimizer_step", crash_at_step_5)
    config = tiny_config(tiny_model_dir, interrupted, "train.save_every=3")
    with pytest.raises(KeyboardInterrupt):
        run_sft(config)
    assert not (interrupted / "model").exists()
    monkeypatch.setattr(engine_module.Engine, "_optimizer_step", original)
    run_sft(config, resume=True)

    assert losses(interrupted) == losses(straight)
    a, b = weights(straight), weights(interrupted)
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_fresh_run_refuses_folder_with_checkpoints(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "run"
    run_sft(tiny_config(tiny_model_dir, out, "train.save_every=3"))
    args = ["sft", "--set", f"output_dir={out}", "--set", f"model.name={tiny_model_dir}"]
    assert main(args) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_nan_stops_cleanly_and_keeps_last_good_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    out = tmp_path / "run"
    original = engine_module.Engine._optimizer_step

    def poison_at_step_3(self, row_batches, step):
        if step == 2:
            with torch.no_grad():
                next(self.model.parameters()).fill_(float("nan"))
        return original(self, row_batches, step)

    monkeypatch.setattr(engine_module.Engine, "_optimizer_step", poison_at_step_3)
    with pytest.raises(TrainingDiverged, match=r"step 3: loss is nan; stopped before updating the weights; "
                       r"the last good checkpoint is .*step-000002"):
        run_sft(tiny_config(tiny_model_dir, out, "train.save_every=2"))
    state = load_file(str(out / "checkpoints" / "step-000002" / "model.safetensors"))
    assert all(torch.isfinite(t).all() for t in state.values())
    assert not (out / "model").exists()


def test_two_processes_match_one_process(tiny_model_dir, tmp_path):
    """torchrun with 2 gloo processes and the same global batch gives the same loss curve."""
    settings = [
        f"model.name={tiny_model_dir}", "data.max_examples=32", "data.max_length=256", "data.on_error=skip",
        "train.batch_size=8", "train.micro_batch_size=2", "train.max_steps=4", "train.learning_rate=1e-3",
    ]
    common = [arg for setting in settings for arg in ("--set", setting)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single, double = tmp_path / "one", tmp_path / "two"
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node"]
    for procs, out in ((1, single), (2, double)):
        cmd = [*launch, str(procs), "-m", "alignkit.cli", "sft", "--set", f"output_dir={out}", *common]
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, [line for line in done.stderr.splitlines() if "error" in line.lower()][:5]
    one, two = losses(single), losses(double)
    assert [r["step"] for r in one] == [r["step"] for r in two]
    assert_same_curves(one, two, ("loss", "eval_loss", "eval_token_accuracy", "token_accuracy"))


def test_lora_and_packing_run_and_save_a_merged_model(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    run_sft(tiny_config(tiny_model_dir, out, "lora.enabled=true", "lora.r=4", "data.packing=true",
                        "train.batch_size=4", "train.max_steps=2", "train.tensorboard=true"))
    model = AutoModelForCausalLM.from_pretrained(out / "model")  # merged: a plain transformers model
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert any((out / "tensorboard").iterdir())
    assert json.loads((out / "eval.json").read_text())["eval_loss"] > 0


def test_max_steps_over_epochs_is_said(tiny_model_dir, tmp_path, capsys):
    run_sft(tiny_config(tiny_model_dir, tmp_path / "run", "train.epochs=3", "train.max_steps=2"))
    assert [row["step"] for row in losses(tmp_path / "run") if "loss" in row] == [1, 2]
    assert "train.max_steps (2) sets the length of the run; train.epochs (3) does not apply" in capsys.readouterr().err


def test_a_spent_wall_clock_budget_stops_after_the_step_and_still_saves_and_evaluates(tiny_model_dir, tmp_path,
                                                                                      capsys):
    out = tmp_path / "run"
    result = run_sft(tiny_config(tiny_model_dir, out, "train.max_minutes=0"))
    assert result.steps == 1
    assert [row["step"] for row in losses(out) if "loss" in row] == [1]
    report = json.loads((out / "eval.json").read_text())
    assert (report["step"], report["planned_steps"], report["stopped_at_budget"]) == (1, 6, True)
    assert "eval_loss" in report and (out / "model" / "model.safetensors").exists()
    assert "train.max_minutes (0.0): stopped after step 1 of 6" in capsys.readouterr().err


def test_a_budget_that_is_not_reached_changes_nothing(tiny_model_dir, tmp_path):
    run_sft(tiny_config(tiny_model_dir, tmp_path / "run", "train.max_minutes=60"))
    report = json.loads((tmp_path / "run" / "eval.json").read_text())
    assert report["step"] == 6 and "stopped_at_budget" not in report and "planned_steps" not in report


def test_checkpoints_of_a_tied_embedding_model_save_quietly(tiny_model_dir, tmp_path, caplog):
    """accelerate drops the tied output weight from a checkpoint and warns each time; loading re-ties it
    (the exact-resume test above), so the warning is left out of the run's log."""
    run_sft(tiny_config(tiny_model_dir, tmp_path / "run", "train.save_every=3"))
    assert list((tmp_path / "run" / "checkpoints").iterdir())
    assert not [r for r in caplog.records if "shared tensor" in r.getMessage()]
