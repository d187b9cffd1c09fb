"""lora.layers with short lora.target_modules: the same adapters as the recipes' long lists of full names."""

import copy
from functools import cache
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from alignkit.config import DPOConfig, LoraConfig, RLConfig, load_config
from alignkit.errors import ConfigError
from alignkit.models import apply_lora, build_tiny_model
from alignkit.pipeline.config import PipelineConfig

REPO = Path(__file__).resolve().parents[1]
# What configs/*.yaml listed before lora.layers: q, v and down projections of blocks 22-29 of 30, by full name.
OLD_TARGETS = [f"layers.{i}.{name}" for i in range(22, 30) for name in ("self_attn.q_proj", "self_attn.v_proj",
                                                                        "mlp.down_proj")]


@pytest.fixture(scope="module")
def deep_model_dir(tmp_path_factory, tokenizer_dir):
    """A tiny random Llama with SmolLM2-135M's 30 blocks."""
    return build_tiny_model(tmp_path_factory.mktemp("deep") / "model", tokenizer_dir, num_hidden_layers=30)


@cache
def base_model(model_dir: Path, task: str):
    if task == "SEQ_CLS":
        return AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=1)
    return AutoModelForCausalLM.from_pretrained(model_dir)


def trainable(model_dir, lora: LoraConfig, task: str = "CAUSAL_LM") -> list[str]:
    model = copy.deepcopy(base_model(model_dir, task))
    return sorted(name for name, p in apply_lora(model, lora, task_type=task).named_parameters() if p.requires_grad)


def recipe_loras() -> dict[str, LoraConfig]:
    loras = {name: load_config(cls, REPO / "configs" / f"{name}.yaml").lora for name, cls in [
        ("dpo-smollm2-hh", DPOConfig), ("ppo-smollm2-hh", RLConfig), ("grpo-smollm2-gsm8k", RLConfig)]}
    for name in ("quickstart", "pipeline-smollm2-full"):
        pipeline = load_config(PipelineConfig, REPO / "configs" / f"{name}.yaml")
        loras |= {f"{name}.{stage}": getattr(pipeline, stage).lora for stage in ("sft", "rm", "ppo", "dpo")
                  if getattr(pipeline, stage).lora.enabled}
    return loras


def test_every_recipe_names_its_layers_in_the_short_form():
    loras = recipe_loras()
    assert len(loras) == 9
    for name, lora in loras.items():
        assert (lora.layers, lora.target_modules) == ("top 8", ["q_proj", "v_proj", "down_proj"]), name


@pytest.mark.parametrize("task", ["CAUSAL_LM", "SEQ_CLS"])
def test_the_short_form_trains_exactly_the_parameters_of_the_old_long_list(deep_model_dir, task):
    old = trainable(deep_model_dir, LoraConfig(enabled=True, r=16, alpha=32, target_modules=OLD_TARGETS), task)
    lora_names = [name for name in old if "lora_" in name]
    assert len(lora_names) == 2 * len(OLD_TARGETS)  # lora_A and lora_B of each of the 24 layers
    assert {int(name.split("layers.")[1].split(".")[0]) for name in lora_names} == set(range(22, 30))
    distinct = []
    for lora in recipe_loras().values():
        distinct += [lora] if lora not in distinct else []
    for lora in distinct:  # every recipe's (they are all the same)
        assert trainable(deep_model_dir, lora, task) == old, lora


def test_layer_indices_pick_those_blocks(tiny_model_dir):
    short = LoraConfig(enabled=True, target_modules=["q_proj", "down_proj"], layers=[0])
    full = LoraConfig(enabled=True, target_modules=["layers.0.self_attn.q_proj", "layers.0.mlp.down_proj"])
    assert trainable(tiny_model_dir, short) == trainable(tiny_model_dir, full)
    every = trainable(tiny_model_dir, LoraConfig(enabled=True, target_modules=["q_proj"]))
    assert trainable(tiny_model_dir, LoraConfig(enabled=True, target_modules=["q_proj"], layers="top 2")) == every


@pytest.mark.parametrize(("layers", "message"), [
    ([0, 2], "lora.layers: [0, 2] selects block 2, but the model has 2 layers (blocks 0-1)"),
    ("top 3", "lora.layers: 'top 3' asks for 3 blocks, but the model has 2 layers (blocks 0-1)"),
])
def test_a_block_out_of_range_names_the_key_the_value_and_the_layer_count(tiny_model_dir, layers, message):
    with pytest.raises(ConfigError) as info:
        trainable(tiny_model_dir, LoraConfig(enabled=True, layers=layers))
    assert str(info.value) == message


def test_full_names_with_layers_are_an_error_naming_both_keys(tiny_model_dir):
    lora = LoraConfig(enabled=True, target_modules=["q_proj", "layers.1.self_attn.v_proj"], layers="top 1")
    with pytest.raises(ConfigError) as info:
        trainable(tiny_model_dir, lora)
    assert str(info.value) == ("lora.target_modules: 'layers.1.self_attn.v_proj' names a block by its index, which "
                               "lora.layers chooses; with lora.layers give names within a block, e.g. q_proj or "
                               "mlp.down_proj")
