"""Config validation: every message names the key, the value and what is allowed."""

import pytest
import yaml

from alignkit.cli import main
from alignkit.config import SFTConfig, load_config, to_dict
from alignkit.errors import ConfigError


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
