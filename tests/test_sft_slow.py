"""SFT of the real SmolLM2-135M-Instruct for a few steps on CPU."""

import json

import pytest
from transformers import AutoModelForCausalLM

from alignkit.config import SFTConfig, load_config
from alignkit.train.sft import run_sft


@pytest.mark.slow
def test_real_model_sft_lowers_training_loss_and_saves_a_loadable_model(tmp_path):
    out = tmp_path / "run"
    config = load_config(
        SFTConfig,
        None,
        [
            f"output_dir={out}",
            "data.max_examples=8",
            "data.eval_fraction=0.03",
            "data.max_length=256",
            "data.on_error=skip",
            "train.batch_size=4",
            "train.micro_batch_size=2",
            "train.max_steps=3",
            "train.learning_rate=1e-4",
        ],
    )
    result = run_sft(config)
    assert result.last_loss < result.first_loss
    report = json.loads((out / "eval.json").read_text())
    assert report["eval_loss"] < report["initial_eval_loss"]
    model = AutoModelForCausalLM.from_pretrained(out / "model")
    assert model.config.num_hidden_layers == 30
