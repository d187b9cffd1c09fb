"""Config validation: every message names the key, the value and what is allowed."""

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from alignkit.cli import main
from alignkit.config import DPOConfig, GenerationConfig, PRMConfig, RLConfig, RMConfig, SFTConfig, load_config, to_dict
from alignkit.config.base import _check
from alignkit.config.shared import layer_indices
from alignkit.errors import ConfigError
from alignkit.feedback.config import CAILabelConfig, CAIReviseConfig
from alignkit.pipeline.config import PipelineConfig


def write(tmp_path, text):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_defaults_and_yaml_and_overrides(tmp_path):
    path = write(tmp_path, "train:\n  learning_rate: 1.0e-4\n  batch_size: 4\ndata:\n  packing: true\n")
    config = load_config(SFTConfig, path, ["train.batch_size=16", "train.learning_rate=3e-5"])
    assert config.train.batch_size == 16
    assert config.train.learning_rate == 3e-5  # YAML reads "3e-5" as text; it is still a number here
    assert config.data.packing is True
    assert config.model.name == "smollm2-135m"


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.learnig_rate=1", "unknown key 'train.learnig_rate'; did you mean 'train.learning_rate'?"),
        ("trian.seed=1", "unknown key 'trian'; did you mean 'train'?"),
        ("train.batch_size=0", "'train.batch_size' must be an integer >= 1, got 0"),
        ("train.batch_size=2.5", "'train.batch_size' must be an integer >= 1, got 2.5"),
        (
            "data.loss_on=everything",
            "'data.loss_on' must be one of 'all_assistant', 'last_assistant', got 'everything'",
        ),
        ("data.eval_fraction=1.5", "'data.eval_fraction' must be a number in [0, 0.9], got 1.5"),
        ("data.packing=maybe", "'data.packing' must be true or false, got 'maybe'"),
        ("model=3", "'model' is a section; expected a mapping, got 3"),
        ("train.learning_rate=fast", "'train.learning_rate' must be a number >= 0, got 'fast'"),
        ("lora.target_modules=q_proj", "'lora.target_modules' must be a list of strings, got 'q_proj'"),
    ],
)
def test_bad_values_name_key_value_and_what_is_allowed(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(SFTConfig, None, [override])
    assert message in str(info.value)


def test_file_errors_name_the_file(tmp_path):
    path = write(tmp_path, "train:\n  learning_rat: 1\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'train.learning_rat'"):
        load_config(SFTConfig, path)
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(SFTConfig, write(tmp_path, "train: [1, \n"))
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(SFTConfig, tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(SFTConfig, None, ["train.seed"])


def test_optional_values_accept_null():
    assert load_config(SFTConfig, None, ["train.max_grad_norm=null"]).train.max_grad_norm is None


def test_resolved_config_round_trips(tmp_path):
    config = load_config(SFTConfig, None, ["train.max_steps=5"])
    path = write(tmp_path, yaml.safe_dump(to_dict(config)))
    assert load_config(SFTConfig, path) == config


def test_cli_prints_one_line_and_exits_2(capsys):
    assert main(["sft", "--set", "train.learnig_rate=1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["alignkit sft: error: config: unknown key 'train.learnig_rate'; did you mean 'train.learning_rate'?"]


def test_help_documents_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["sft", "--help"])
    out = capsys.readouterr().out
    for key in ("train.learning_rate", "data.packing", "lora.r", "model.name", "output_dir", "train.batch_size"):
        assert key in out


# ---------------------------------------------------------------- every key acts in its stage

REPO = Path(__file__).resolve().parents[1]
STAGES = {"sft": SFTConfig, "rm": RMConfig, "dpo": DPOConfig, "rl": RLConfig}
SFT_ONLY_DATA = {"packing": "true", "padding_free": "true", "loss_on": "last_assistant"}


@pytest.mark.parametrize("stage", ["rm", "dpo", "rl"])
@pytest.mark.parametrize("key", sorted(SFT_ONLY_DATA))
def test_sft_only_data_keys_are_unknown_to_other_stages(stage, key):
    valid = "train, extra_train, eval, "
    with pytest.raises(ConfigError, match=rf"^config: unknown key 'data\.{key}'; valid keys: {valid}"):
        load_config(STAGES[stage], None, [f"data.{key}={SFT_ONLY_DATA[key]}"])
    assert load_config(SFTConfig, None, [f"data.{key}={SFT_ONLY_DATA[key]}"])  # SFT reads all three


def test_rl_data_has_no_max_length_the_ptx_demonstrations_have_theirs():
    with pytest.raises(ConfigError, match=r"unknown key 'data\.max_length'"):
        load_config(RLConfig, None, ["data.max_length=128"])
    config = load_config(RLConfig, None, ["rl.ptx_coef=0.5", "rl.ptx_max_length=128"])
    assert config.rl.ptx_max_length == 128


def test_help_lists_only_the_data_keys_of_the_stage(capsys):
    with pytest.raises(SystemExit):
        main(["rm", "--help"])
    out = capsys.readouterr().out
    assert "data.max_length" in out and "reward.share_prompt" in out
    assert "data.packing" not in out and "data.loss_on" not in out and "data.padding_free" not in out


@pytest.mark.parametrize(
    ("overrides", "shares"),
    [([], True), (["reward.pooling=mean"], True), (["reward.pooling=mean", "reward.share_prompt=false"], False),
     (["reward.share_prompt=null"], True)],  # null: what older runs wrote
)
def test_reward_share_prompt_is_on_by_default_with_either_pooling(overrides, shares):
    assert load_config(RMConfig, None, overrides).reward.shares_prompt() is shares


@pytest.mark.parametrize(
    ("overrides", "shares"),
    [([], True), (["preference.loss=kto"], False), (["preference.loss=ipo", "preference.share_prompt=false"], False)],
)
def test_preference_share_prompt_default_follows_the_loss(overrides, shares):
    assert load_config(DPOConfig, None, overrides).preference.shares_prompt() is shares


@pytest.mark.parametrize(
    ("cls", "overrides", "message"),
    [
        (SFTConfig, ["lora.r=8"], "'lora.r' is 8, but it acts only when lora.enabled == true (lora.enabled is False)"),
        (SFTConfig, ["lora.layers=top 2"], "'lora.layers' is 'top 2', but it acts only when lora.enabled == true"),
        (SFTConfig, ["data.eval=x.jsonl", "data.eval_fraction=0.2"],
         "'data.eval_fraction' is 0.2, but it acts only when data.eval == null (data.eval is 'x.jsonl')"),
        (SFTConfig, ["model.name=/a/folder", "model.cache_dir=/tmp/cache"],
         "'model.cache_dir' is '/tmp/cache', but it acts only when model.name == smollm2-135m"),
        (RMConfig, ["reward.bootstrap=true"],
         "'reward.bootstrap' is True, but it acts only when reward.ensemble_size > 1 (reward.ensemble_size is 1)"),
        (DPOConfig, ["preference.loss=kto", "preference.share_prompt=true"],
         "'preference.share_prompt' is True, but it acts only when preference.loss != kto"),
        (DPOConfig, ["preference.label_smoothing=0.1"], "acts only when preference.loss == cdpo"),
        (DPOConfig, ["preference.simpo_gamma=0.5"], "acts only when preference.loss == simpo"),
        (DPOConfig, ["preference.orpo_lambda=1"], "acts only when preference.loss == orpo"),
        (DPOConfig, ["preference.kto_desirable_weight=2"], "acts only when preference.loss == kto"),
        (RLConfig, ["rl.algo=grpo", "rl.samples_per_prompt=2", "rl.gamma=0.9"],
         "'rl.gamma' is 0.9, but it acts only when rl.algo == ppo (rl.algo is 'grpo')"),
        (RLConfig, ["rl.algo=rloo", "rl.samples_per_prompt=2", "rl.critic=head"], "acts only when rl.algo == ppo"),
        (RLConfig, ["rl.group_scale=none"], "'rl.group_scale' is 'none', but it acts only when rl.algo == grpo"),
        (RLConfig, ["rl.kl_horizon=100"], "'rl.kl_horizon' is 100.0, but it acts only when rl.kl_target != null"),
        (RLConfig, ["rl.ptx_data=gsm8k"], "'rl.ptx_data' is 'gsm8k', but it acts only when rl.ptx_coef > 0"),
        (RLConfig, ["rl.critic=head", "rl.critic_init=policy"], "acts only when rl.critic == separate"),
        (RLConfig, ["reward.kind=gsm8k", "reward.path=runs/rm"], "acts only when reward.kind == model"),
        (RLConfig, ["reward.kind=function", "reward.function=m:f", "reward.max_length=64"],
         "'reward.max_length' is 64, but it acts only when reward.kind == model"),
        (RLConfig, ["reward.kind=model", "reward.function=m:f"], "acts only when reward.kind == function"),
        (RLConfig, ["reward.lam=2"], "'reward.lam' is 2.0, but it acts only when reward.combine == mean_minus_std"),
        (GenerationConfig, ["temperature=0", "top_p=0.9"], "'top_p' is 0.9, but it acts only when temperature > 0"),
        (GenerationConfig, ["temperature=0", "top_k=5"], "'top_k' is 5, but it acts only when temperature > 0"),
        (CAILabelConfig, ["label.policy=runs/sft"], "acts only when label.pairs_from == policy"),
        (CAILabelConfig, ["label.cot_clamp_low=0.3"], "acts only when label.chain_of_thought == true"),
        (CAILabelConfig, ["feedback.base_url=http://127.0.0.1:8000/v1"], "acts only when feedback.backend == openai"),
        (CAILabelConfig, ["feedback.backend=openai", "feedback.dtype=bfloat16"],
         "acts only when feedback.backend == hf"),
        (CAILabelConfig, ["feedback.backend=openai", "feedback.top_logprobs=5"],
         "acts only when feedback.api == chat"),
        (PipelineConfig, ["ppo.rl.group_scale=none"], "'ppo.rl.group_scale' is 'none', but it acts only when "
         "ppo.rl.algo == grpo"),
    ],
)
def test_a_key_that_another_setting_switches_off_is_an_error(cls, overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(cls, None, overrides)
    assert message in str(info.value)


def test_a_switched_off_key_at_its_default_is_accepted():
    """What a run folder's config.yaml holds: every key, those that do not act at their defaults."""
    config = load_config(RLConfig, None, ["rl.algo=grpo", "rl.samples_per_prompt=2", "rl.gamma=1.0", "lora.r=16"])
    assert config.rl.gamma == 1.0 and config.lora.r == 16


def _section_classes() -> list[type]:
    """Every config class of a stage, cai and pipeline config, nested sections included."""
    seen, todo = [], [SFTConfig, RMConfig, DPOConfig, RLConfig, PipelineConfig, CAILabelConfig, CAIReviseConfig]
    while todo:
        cls = todo.pop()
        if cls not in seen:
            seen.append(cls)
            hints = typing.get_type_hints(cls)
            todo += [hints[f.name] for f in dataclasses.fields(cls) if dataclasses.is_dataclass(hints[f.name])]
    return seen


@pytest.mark.parametrize("cls", _section_classes(), ids=lambda cls: cls.__name__)
def test_every_condition_names_a_sibling_key_and_a_value_it_can_take(cls):
    """A typo in a condition ('algo == PPO') would switch its key off for good."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for f in fields.values():
        for condition in f.metadata.get("only", ()):
            other, op, literal = condition.split(" ", 2)
            assert other in fields and other != f.name, (cls.__name__, f.name, condition)
            assert op in ("==", "!=", ">"), (cls.__name__, f.name, condition)
            if op == ">":
                assert hints[other] in (int, float), (cls.__name__, f.name, condition)
            else:  # the compared value passes the sibling's own validation
                value = yaml.safe_load(literal)
                assert _check(value, hints[other], fields[other].metadata, other, "") == value, condition


# ---------------------------------------------------------------- lora.layers


@pytest.mark.parametrize(("value", "expected"), [("top 8", "top 8"), ("[0, 3]", [0, 3]), ("[5]", [5]), ("null", None)])
def test_lora_layers_take_top_n_or_block_indices(value, expected):
    config = load_config(SFTConfig, None, ["lora.enabled=true", f"lora.layers={value}"])
    assert config.lora.layers == expected


@pytest.mark.parametrize("value", ["bottom 2", "top 0", "top", "top -1", "top 2.5", "[]", "[-1]", "[1.5]", "3",
                                   "[a]", "[true]", "[1, 1]"])
def test_lora_layers_refuse_anything_else(value):
    with pytest.raises(ConfigError) as info:
        load_config(SFTConfig, None, ["lora.enabled=true", f"lora.layers={value}"])
    assert str(info.value) == ("config: 'lora.layers' must be 'top N' (N >= 1) or a list of distinct block indices "
                               f"(integers >= 0), got {yaml.safe_load(value)!r}")


@pytest.mark.parametrize(("layers", "count", "expected"),
                         [("top 3", 30, [27, 28, 29]), ("top 30", 30, list(range(30))), ([29, 0], 30, [0, 29]),
                          (None, 30, None), ("top 1", 2, [1])])
def test_layer_indices_resolve_against_the_models_layer_count(layers, count, expected):
    assert layer_indices(layers, count) == expected


@pytest.mark.parametrize(("layers", "message"), [
    ([3, 30], "lora.layers: [3, 30] selects block 30, but the model has 30 layers (blocks 0-29)"),
    ("top 31", "lora.layers: 'top 31' asks for 31 blocks, but the model has 30 layers (blocks 0-29)"),
])
def test_layer_indices_out_of_range_name_the_key_the_value_and_the_layer_count(layers, message):
    with pytest.raises(ConfigError) as info:
        layer_indices(layers, 30)
    assert str(info.value) == message


# ---------------------------------------------------------------- round trips and the shipped recipes


@pytest.mark.parametrize(
    ("cls", "overrides"),
    [
        (SFTConfig, ["train.max_steps=5", "data.packing=true", "lora.enabled=true", "lora.layers=top 1"]),
        (RMConfig, ["reward.pooling=mean", "reward.ensemble_size=2", "reward.bootstrap=true", "lora.enabled=true",
                    "lora.layers=[0, 1]", "lora.target_modules=[q_proj]"]),
        (DPOConfig, ["preference.loss=kto", "preference.kto_desirable_weight=1.5", "data.eval=x.jsonl"]),
        (RLConfig, ["rl.algo=grpo", "rl.samples_per_prompt=4", "rl.group_scale=none", "rl.ptx_coef=0.1",
                    "rl.ptx_max_length=64", "reward.kind=function", "reward.function=m:f"]),
        (CAILabelConfig, ["feedback.backend=openai", "feedback.api=chat", "feedback.top_logprobs=5"]),
    ],
)
def test_every_stage_config_round_trips_through_its_saved_yaml(tmp_path, cls, overrides):
    config = load_config(cls, None, overrides)
    path = write(tmp_path, yaml.safe_dump(to_dict(config), sort_keys=False))
    assert load_config(cls, path) == config


RECIPES = {"sft": SFTConfig, "rm": RMConfig, "prm": PRMConfig, "dpo": DPOConfig, "ppo": RLConfig, "grpo": RLConfig,
           "cai-label": CAILabelConfig, "cai-revise": CAIReviseConfig, "pipeline": PipelineConfig,
           "quickstart": PipelineConfig}


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda path: path.name)
def test_every_shipped_recipe_loads(path):
    cls = next(cls for prefix, cls in RECIPES.items() if path.name.startswith(prefix + "-") or
               path.stem == prefix)
    load_config(cls, path)
