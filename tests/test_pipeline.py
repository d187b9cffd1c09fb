"""``alignkit pipeline`` on a tiny random model and tiny data: every stage end to end, a second run that
reuses every finished stage, half-finished pipelines that resume without redoing finished stages, the
wired keys, and the two shipped pipeline configs."""

import json
import math
import os
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import planted_pairs, write_jsonl

from alignkit.cli import main
from alignkit.config import load_config
from alignkit.errors import ConfigError
from alignkit.pipeline.config import DEFAULT_STAGES, PIPELINE_STAGES, PipelineConfig
from alignkit.pipeline.evaluation import pick_judge
from alignkit.pipeline.run import check_pipeline_config, run_pipeline
from alignkit.pipeline.stages import STAGES, wired

REPO = Path(__file__).resolve().parents[1]
OUT = "out"  # relative, so that a copied pipeline folder is the same pipeline in its new working directory


def tiny_overrides(model, demos, pairs, *extra) -> list[str]:
    """A pipeline of two or three optimizer steps per stage, a checkpoint after each."""
    small = ["train.batch_size=2", "train.micro_batch_size=2", "train.save_every=1"]
    held_out = ["data.eval_fraction=0.25"]
    return [
        f"output_dir={OUT}", f"stages=[{', '.join(PIPELINE_STAGES)}]", f"sft.model.name={model}",
        f"sft.data.train={demos}",
        *[f"{stage}.{key}" for stage in ("sft", "rm", "judge", "ppo", "dpo") for key in small + held_out],
        f"rm.data.train={pairs}", f"judge.data.train={pairs}", f"dpo.data.train={pairs}", f"ppo.data.train={pairs}",
        "rm.data.max_examples=3", "judge.data.skip_examples=3",  # the judge learns from the other 3 of 6 pairs
        "ppo.rl.iterations=2", "ppo.rl.prompts_per_iteration=2", "ppo.rl.critic=head",
        "ppo.generation.max_new_tokens=4", "ppo.reward.max_length=64",
        "eval.num_prompts=2", "eval.max_new_tokens=4", f"eval.red_team={pairs}", f"eval.benign={demos}",
        "eval.max_red_team=2", *extra,
    ]


@pytest.fixture(scope="module")
def inputs(tiny_model_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("pipeline-data")
    demos = [{"prompt": f"Tell me about {row['prompt'][14:]} number {i}", "response": row["chosen"]}
             for i, row in enumerate(planted_pairs(8))]
    return tiny_model_dir, write_jsonl(root / "demos.jsonl", demos), write_jsonl(root / "pairs.jsonl", planted_pairs(8))


def config(inputs, *extra) -> PipelineConfig:
    return load_config(PipelineConfig, None, tiny_overrides(*inputs, *extra))


@pytest.fixture(scope="module")
def finished(inputs, tmp_path_factory):
    """A finished pipeline folder (``out``) in its own working directory, and the statuses of its run."""
    cwd = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        results = run_pipeline(config(inputs))
    return cwd, results


@pytest.fixture
def copy_of_finished(finished, tmp_path, monkeypatch):
    """The finished pipeline copied into ``tmp_path`` (times of modification kept), the working directory there."""
    shutil.copytree(finished[0] / OUT, tmp_path / OUT)
    monkeypatch.chdir(tmp_path)
    return tmp_path / OUT


def fingerprints(out: Path, stages) -> dict:
    """Each stage's metrics.jsonl (or eval.json for eval): its content and time of modification."""
    files = {stage: out / stage / ("eval.json" if stage == "eval" else "metrics.jsonl") for stage in stages}
    return {stage: (path.read_bytes(), os.stat(path).st_mtime_ns) for stage, path in files.items()}


def statuses(results) -> dict:
    return {r.stage: r.status for r in results}


def test_every_stage_runs_and_writes_its_folder(finished):
    cwd, results = finished
    out = cwd / OUT
    assert statuses(results) == dict.fromkeys(PIPELINE_STAGES, "done")
    for stage in ("sft", "rm", "judge", "ppo", "dpo"):
        assert (out / stage / "model").is_dir() and (out / stage / "eval.json").is_file()
        assert (out / stage / "metrics.jsonl").read_text().strip()
        assert (out / stage / "checkpoints").is_dir()
    written = {stage: yaml.safe_load((out / stage / "config.yaml").read_text())
               for stage in ("rm", "judge", "ppo", "dpo")}
    assert {written[s]["model"]["name"] for s in written} == {f"{OUT}/sft/model"}
    assert written["ppo"]["reward"]["path"] == f"{OUT}/rm" and written["dpo"]["output_dir"] == f"{OUT}/dpo"
    report = json.loads((out / "eval" / "eval.json").read_text())
    assert set(report["winrate"]) == {"ppo", "dpo"}
    assert report["judge"] == f"{OUT}/judge" and report["judge_is_independent"] is True
    assert report["judge_eval"]["pairs"] == 2  # held out on the reward model's split
    for policy, winrate in report["winrate"].items():
        assert winrate["num_prompts"] == 2 and 0 <= winrate["win_rate"] <= 1
        assert winrate["policy"] == f"{OUT}/{policy}" and winrate["baseline"] == f"{OUT}/sft"
        assert winrate["judge"] == f"{OUT}/judge"
        hacking = json.loads((out / "eval" / f"{policy}-vs-sft" / "hacking.json").read_text())
        assert hacking["win_rate"]["rate"] == winrate["win_rate"] and "style_drift" in hacking
        assert hacking["red_team"]["num_prompts"] == 2 and hacking["benign"]["num_prompts"] == 2
        assert hacking["red_team"]["judge_threshold"] == hacking["benign"]["baseline"]["median_reward"]
        assert (out / "eval" / f"{policy}-vs-sft" / "samples.jsonl").is_file()
    assert (hacking["training"] is None) and json.loads((out / "eval" / "ppo-vs-sft" / "hacking.json").read_text())[
        "training"]["steps"] == [1, 2]  # the RL curves of the PPO run; DPO is not an RL run
    page = (out / "eval" / "report.html").read_text()
    assert all(f"{OUT}/{folder}" in page for folder in ("sft", "rm", "judge", "ppo", "dpo", "eval"))
    assert "ppo-vs-sft: win rate" in (out / "eval" / "report.md").read_text()
    assert report["rm_eval"]["pairs"] == 2  # the reward model's held-out 25% of 8 pairs
    assert json.loads((out / "rm" / "eval.json").read_text())["rm_eval"] == report["rm_eval"]
    assert all(r.figure != "-" for r in results), results


def test_a_second_run_skips_every_finished_stage(copy_of_finished, inputs, capsys):
    before = fingerprints(copy_of_finished, PIPELINE_STAGES)
    results = run_pipeline(config(inputs))
    assert statuses(results) == dict.fromkeys(PIPELINE_STAGES, "skipped")
    assert fingerprints(copy_of_finished, PIPELINE_STAGES) == before
    err = capsys.readouterr().err
    assert "is finished; skipped" in err and "key figure" in err


def test_a_half_finished_stage_resumes_and_the_later_stages_run_again(copy_of_finished, inputs):
    (copy_of_finished / "ppo" / "eval.json").unlink()  # stopped after its last checkpoint
    shutil.rmtree(copy_of_finished / "dpo")
    before = fingerprints(copy_of_finished, ("sft", "rm"))
    evaluated = fingerprints(copy_of_finished, ("eval",))
    results = run_pipeline(config(inputs))
    assert statuses(results) == {"sft": "skipped", "rm": "skipped", "judge": "skipped", "ppo": "resumed",
                                 "dpo": "done", "eval": "done"}
    assert fingerprints(copy_of_finished, ("sft", "rm")) == before
    assert fingerprints(copy_of_finished, ("eval",)) != evaluated  # the policies changed, so it ran again
    assert (copy_of_finished / "ppo" / "eval.json").is_file() and (copy_of_finished / "dpo" / "model").is_dir()


def test_an_interrupted_stage_resumes_from_its_checkpoint(copy_of_finished, inputs, monkeypatch):
    import alignkit.train.engine as engine

    shutil.rmtree(copy_of_finished / "dpo")
    before = fingerprints(copy_of_finished, ("sft", "rm", "ppo"))
    save = engine.save_checkpoint

    def save_then_stop(accelerator, run_dir, step, keep):
        saved = save(accelerator, run_dir, step, keep)
        if Path(run_dir).name == "dpo":
            raise KeyboardInterrupt
        return saved

    monkeypatch.setattr(engine, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config(inputs))
    assert not (copy_of_finished / "dpo" / "eval.json").exists()
    monkeypatch.setattr(engine, "save_checkpoint", save)
    results = run_pipeline(config(inputs))
    assert statuses(results) == {"sft": "skipped", "rm": "skipped", "judge": "skipped", "ppo": "skipped",
                                 "dpo": "resumed", "eval": "done"}
    assert fingerprints(copy_of_finished, ("sft", "rm", "ppo")) == before
    steps = [json.loads(line)["step"] for line in (copy_of_finished / "dpo" / "metrics.jsonl").open()]
    assert steps == sorted(set(steps)) and len(steps) == 3  # steps 1-3 once each: the first was not redone


def test_a_finished_stage_with_other_settings_is_an_error_naming_the_key(copy_of_finished, inputs):
    with pytest.raises(ConfigError, match=r"'ppo\.rl\.iterations' was 2 for this run folder, the config now says 3"):
        run_pipeline(config(inputs, "ppo.rl.iterations=3"))


def test_a_stage_left_out_must_have_finished(inputs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="stages: ppo needs the sft stage's finished folder out/sft; add 'sft'"):
        run_pipeline(config(inputs, "stages=[ppo]"))
    assert not (tmp_path / OUT).exists()


@pytest.mark.parametrize("key", sorted(PipelineConfig.WIRED))
def test_setting_a_wired_key_is_an_error_naming_it(key):
    with pytest.raises(ConfigError, match=rf"config: '{key}' is wired to output_dir/.* and cannot be set"):
        load_config(PipelineConfig, None, [f"{key}=somewhere"])


def test_wired_keys_in_a_file_name_the_file_and_cli_exits_2(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text("rm:\n  model:\n    name: smollm2-135m\n")
    assert main(["pipeline", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"alignkit pipeline: error: {path}: 'rm.model.name' is wired to output_dir/sft/model "
                   "(runs/pipeline/sft/model) and cannot be set; remove it"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("stages=[sft, ppo, rlhf]", "'stages' must be a list of 'sft', 'rm', 'judge', 'ppo', 'dpo', 'eval'"),
        ("stages=[]", "stages: empty"),
        ("ppo.reward.kind=gsm8k", "ppo.reward.kind: the pipeline scores PPO with its reward model"),
        ("ppo.rl.algo=grpo", "ppo.rl.samples_per_prompt: grpo compares"),
    ],
)
def test_pipelines_that_cannot_run_are_errors_before_any_stage(override, message):
    with pytest.raises(ConfigError, match=message):
        check_pipeline_config(wired(load_config(PipelineConfig, None, [override])))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["rm.data.max_examples=400"], r"judge.data.skip_examples: the judge's training pairs \[0, inf\) overlap "
         r"the reward model's \[0, 400\)"),
        (["rm.data.max_examples=400", "judge.data.skip_examples=200"], r"\[200, inf\) overlap .* \[0, 400\)"),
        (["rm.data.max_examples=4", "judge.data.skip_examples=4", "rm.data.extra_train=[pandalm, autoj-pairwise]",
          "judge.data.extra_train=[pandalm]"], "judge.data.extra_train: pandalm also trains the reward model"),
        (["judge.data.eval_fraction=0.2"], "judge.data.eval_fraction: the judge is trained and held out on the "
         "reward model's data, so it must equal rm.data.eval_fraction"),
        (["rm.data.max_examples=4", "judge.data.skip_examples=4", "judge.train.seed=1"],
         "judge.train.seed: it seeds the held-out split"),
    ],
)
def test_a_judge_must_learn_from_other_pairs_of_the_same_split(overrides, message):
    with pytest.raises(ConfigError, match=message):
        check_pipeline_config(wired(load_config(PipelineConfig, None, ["stages=[sft, rm, judge]", *overrides])))
    check_pipeline_config(wired(load_config(PipelineConfig, None, [  # rm on pairs 10-13, the judge on 0-9
        "stages=[sft, rm, judge]", "rm.data.skip_examples=10", "rm.data.max_examples=4",
        "judge.data.max_examples=10"])))


@pytest.mark.parametrize(("name", "stages"), [("quickstart.yaml", DEFAULT_STAGES),
                                              ("pipeline-smollm2-full.yaml", PIPELINE_STAGES)])
def test_shipped_pipeline_configs_load_and_validate(name, stages):
    loaded = load_config(PipelineConfig, REPO / "configs" / name)
    config = wired(loaded)
    check_pipeline_config(config)
    root = loaded.output_dir
    assert config.stages == list(stages)
    assert [config.rm.model.name, config.ppo.model.name, config.dpo.model.name] == [f"{root}/sft/model"] * 3
    assert config.ppo.reward.path == f"{root}/rm"
    assert config.eval.num_prompts <= (config.rm.data.max_eval_examples or math.inf)
    checkpointed = [stage for stage in ("sft", "rm", "ppo", "dpo")  # a head-only fit has no steps to resume
                    if not (stage == "rm" and config.rm.reward.head_only)]
    assert all(getattr(config, stage).train.save_every for stage in checkpointed)


def test_stage_order_is_the_configs():
    assert tuple(stage.name for stage in STAGES) == PIPELINE_STAGES


def test_help_lists_the_sections_but_not_the_wired_keys(capsys):
    with pytest.raises(SystemExit):
        main(["pipeline", "--help"])
    out = capsys.readouterr().out
    assert "ppo.rl.iterations" in out and "eval.num_prompts" in out and "stages" in out
    assert all(f"  {key} (" not in out for key in PipelineConfig.WIRED)


def test_without_a_finished_judge_the_reward_model_judges_and_says_so(tmp_path, capsys):
    loaded = load_config(PipelineConfig, None, [f"output_dir={tmp_path}"])
    assert pick_judge(loaded) == {"judge": str(tmp_path / "rm"), "judge_is_independent": False}
    assert "not independent" in capsys.readouterr().err
    (tmp_path / "judge" / "model").mkdir(parents=True)
    (tmp_path / "judge" / "eval.json").write_text("{}")
    assert pick_judge(loaded) == {"judge": str(tmp_path / "judge"), "judge_is_independent": True}
