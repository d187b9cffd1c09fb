"""Online RL (PPO, GRPO, RLOO) on tiny models: rollout layout, advantages, config checks, reward
sources, and a tiny policy learning a planted reward with each algorithm."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import WORDS, word_policy, write_jsonl

from alignkit.config import ModelConfig, RLConfig, RLSettings, load_config
from alignkit.data.records import Prompt
from alignkit.errors import AlignkitError, ConfigError
from alignkit.feedback.checkers import extract_answer, gsm8k_correct
from alignkit.losses.preference import token_logprobs
from alignkit.models import load_causal_lm
from alignkit.models.reference import logprobs_from
from alignkit.rl.generation import Completion
from alignkit.rl.rewards import FunctionReward, GSM8KReward
from alignkit.rl.rollout import RolloutRow, collate_rollouts, compute_advantages, pad_responses, response_frame
from alignkit.train.rl import check_rl_config, run_rl


def row(prompt_length, response, fill=1.0):
    n = len(response)
    return RolloutRow(list(range(10, 10 + prompt_length)) + response, prompt_length,
                      torch.full((n,), fill), torch.zeros(n), torch.arange(1.0, n + 1))


def test_collate_puts_response_tokens_in_the_next_token_frame():
    batch = collate_rollouts([row(3, [7, 8]), row(2, [5, 6, 9])], pad_token_id=0)
    assert batch["input_ids"].tolist() == [[10, 11, 12, 7, 8], [10, 11, 5, 6, 9]]
    assert batch["labels"].tolist() == [[-100, -100, -100, 7, 8], [-100, -100, 5, 6, 9]]
    # Position t predicts token t + 1: response tokens at 3, 4 (row 0) and 2, 3, 4 (row 1).
    assert batch["response_mask"].tolist() == [[False, False, True, True], [False, True, True, True]]
    assert batch["advantages"].tolist() == [[0, 0, 1, 2], [0, 1, 2, 3]]
    assert int(batch["logits_from"]) == 1 and int(batch["num_tokens"]) == 10
    assert [v.tolist() for v in response_frame(batch["advantages"], batch)] == [[1, 2], [1, 2, 3]]
    padded, mask = pad_responses(response_frame(batch["advantages"], batch))
    assert padded.tolist() == [[1, 2, 0], [1, 2, 3]] and mask.sum() == 5


def test_logits_kept_from_the_shortest_prompt_give_the_full_log_probs(tiny_model_dir):
    model = load_causal_lm(ModelConfig(name=str(tiny_model_dir)))
    batch = collate_rollouts([row(3, [7, 8]), row(2, [5, 6, 9])], pad_token_id=0)
    full = token_logprobs(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits,
                          batch["labels"], temperature=0.7)[0]
    start = int(batch["logits_from"])
    kept = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 logits_to_keep=batch["input_ids"].shape[1] - start).logits
    assert torch.allclose(logprobs_from(kept, batch["labels"], start, 0.7), full, atol=1e-6)


def settings(**fields) -> RLSettings:
    return RLSettings(**fields)


def slow_ppo_advantages(scores, old, ref, values, lengths, beta, gamma, lam):
    """Per row, in plain Python: r_t = -β (logp_t - ref_t) + [t = last] R, then
    A_t = Σ_l (γλ)^l δ_{t+l} with δ_t = r_t + γ V_{t+1} - V_t (V after the last token 0); G_t = A_t + V_t."""
    advantages, returns = [], []
    for b, n in enumerate(lengths):
        rewards = [-beta * (float(old[b, t]) - float(ref[b, t])) for t in range(n)]
        rewards[-1] += float(scores[b])
        v = [float(values[b, t]) for t in range(n)] + [0.0]
        deltas = [rewards[t] + gamma * v[t + 1] - v[t] for t in range(n)]
        row = [sum((gamma * lam) ** k * deltas[t + k] for k in range(n - t)) for t in range(n)]
        advantages.append(row + [0.0] * (old.shape[1] - n))
        returns.append([a + v[t] for t, a in enumerate(row)] + [0.0] * (old.shape[1] - n))
    return torch.tensor(advantages), torch.tensor(returns)


def test_ppo_advantages_are_gae_on_kl_shaped_rewards():
    torch.manual_seed(0)
    old, ref, values = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    scores = torch.tensor([1.0, -0.5, 2.0])
    s = settings(algo="ppo", kl_coef=0.1, gamma=0.9, lam=0.8, whiten_advantages=False)
    out = compute_advantages(scores, old, ref, mask, s, 0.1, values)
    expected, returns = slow_ppo_advantages(scores, old, ref, values, [4, 2, 1], 0.1, 0.9, 0.8)
    assert torch.allclose(out.advantages, expected, atol=1e-6) and torch.allclose(out.returns, returns, atol=1e-6)
    assert torch.allclose(out.kl, (old - ref) * mask)  # k1 = log π - log π_ref on the valid tokens


def test_group_advantages_subtract_the_summed_kl_from_the_reward_and_broadcast():
    old, ref = torch.zeros(4, 3), torch.full((4, 3), -0.5)  # k1 = 0.5 per token
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    scores = torch.tensor([1.0, 0.0, 0.5, 0.5])
    penalised = [1.0 - 0.3, 0.0 - 0.1, 0.5 - 0.2, 0.5 - 0.3]  # R - β Σ_t kl_t, β = 0.2
    # pairs (0.7, -0.1) and (0.3, 0.2): RLOO subtracts the other; GRPO divides by the pair's sample std |a - b|/√2
    expected = {"rloo": [0.8, -0.8, 0.1, -0.1],
                "grpo": [0.4 / (0.8 / math.sqrt(2) + 1e-4), -0.4 / (0.8 / math.sqrt(2) + 1e-4),
                         0.05 / (0.1 / math.sqrt(2) + 1e-4), -0.05 / (0.1 / math.sqrt(2) + 1e-4)]}
    for algo, sequence in expected.items():
        s = settings(algo=algo, samples_per_prompt=2, kl_coef=0.2)
        out = compute_advantages(scores, old, ref, mask, s, 0.2)
        assert torch.allclose(out.rewards, torch.tensor(penalised))
        assert torch.allclose(out.advantages, torch.tensor(sequence).unsqueeze(1) * mask, atol=1e-5)
        assert out.returns is None
    in_loss = compute_advantages(scores, old, ref, mask, settings(algo="rloo", samples_per_prompt=2,
                                                                  kl_penalty="loss"), 0.2)
    assert torch.allclose(in_loss.rewards, scores)


def test_config_combinations_that_cannot_work_are_errors():
    def check(*overrides):
        with pytest.raises(ConfigError) as info:
            check_rl_config(load_config(RLConfig, None, list(overrides)))
        return str(info.value)

    assert "at least 2" in check("rl.algo=grpo", "rl.samples_per_prompt=1")
    assert "temperature > 0" in check("generation.temperature=0")
    assert "top_p 1" in check("generation.top_p=0.9")
    assert "rl.iterations" in check("train.max_steps=3")
    assert "lora.enabled" in check("rl.reference=adapter")
    assert "reward.kind: model" in check("reward.kind=gsm8k", "rl.critic_init=reward")
    no_op = check("rl.kl_penalty=loss")  # the default estimator, k1, has zero expected gradient
    assert "rl.kl_estimator: k1" in no_op and "rl.kl_penalty: loss" in no_op and "k3" in no_op and "k2" in no_op
    check_rl_config(load_config(RLConfig, None, ["rl.kl_penalty=loss", "rl.kl_estimator=k3"]))
    check_rl_config(load_config(RLConfig, None, ["rl.algo=rloo", "rl.samples_per_prompt=4"]))


def test_gsm8k_checker_reads_the_final_number():
    assert extract_answer("So 3 + 4 = 7.\nThe answer is 7.") == "7"
    assert extract_answer("We get 12 apples, then 15.") == "15"
    assert extract_answer("#### 1,000") == "1,000" and extract_answer("no numbers") is None
    assert gsm8k_correct("The answer is $1,000.", "1000")
    assert gsm8k_correct("It is 2.50", "2.5") and not gsm8k_correct("It is 25", "2.5")
    assert gsm8k_correct("The answer is 18. Then 3 more.", "18")  # the marked answer wins over later numbers
    prompts = [Prompt(({"role": "user", "content": "q"},), "4")] * 2
    completions = [Completion("2 + 2 = 4", (1,), 1, True), Completion("5", (1,), 1, True)]
    assert GSM8KReward()(prompts, completions).tolist() == [1.0, 0.0]
    with pytest.raises(AlignkitError, match="no reference 'answer'"):
        GSM8KReward()([Prompt(({"role": "user", "content": "q"},))], completions[:1])


def test_function_rewards_are_checked():
    completions = [Completion("a", (1,), 1, True)] * 2
    assert FunctionReward("helpers:river_share")([None, None], completions).tolist() == [0.0, 0.0]
    with pytest.raises(ConfigError, match="package.module:function"):
        FunctionReward("helpers")
    with pytest.raises(ConfigError, match="cannot load"):
        FunctionReward("helpers:nope")
    reward = FunctionReward("helpers:river_share")
    reward.function = lambda prompts, completions: [1.0]
    with pytest.raises(AlignkitError, match="1 rewards for 2 completions"):
        reward([None, None], completions)
    reward.function = lambda prompts, completions: [1.0, float("nan")]
    with pytest.raises(AlignkitError, match="finite"):
        reward([None, None], completions)


@pytest.fixture(scope="module")
def word_policy_dir(tmp_path_factory, tokenizer_dir):
    return word_policy(tmp_path_factory.mktemp("words") / "model", tokenizer_dir)


@pytest.fixture(scope="module")
def word_prompts(tmp_path_factory):
    path = tmp_path_factory.mktemp("prompts") / "prompts.jsonl"
    return write_jsonl(path, [{"prompt": f"Tell me about {word}"} for word in WORDS])


@pytest.mark.parametrize("algo", ["ppo", "grpo", "rloo"])
def test_a_tiny_policy_learns_a_planted_reward(algo, word_policy_dir, word_prompts, tmp_path):
    out = tmp_path / algo
    config = load_config(RLConfig, None, [
        f"output_dir={out}", f"model.name={word_policy_dir}", f"data.train={word_prompts}", "data.eval_fraction=0.2",
        "reward.kind=function", "reward.function=helpers:river_share", f"rl.algo={algo}",
        "rl.samples_per_prompt=8", "rl.prompts_per_iteration=4", "rl.ppo_epochs=2", "rl.iterations=8",
        "rl.kl_coef=0.01", "rl.critic=head", "rl.eval_prompts=3", "rl.sample_every=4",
        "train.batch_size=16", "train.micro_batch_size=16", "train.learning_rate=1e-3",
        "generation.max_new_tokens=8", "rl.monitors=[helpers:river_share]",
    ])
    run_rl(config)
    rows = [row for row in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if "reward" in row]
    assert all(row["monitor_river_share"] == pytest.approx(row["reward"]) for row in rows)  # logged, not optimised
    rewards = [row["reward"] for row in rows]
    assert len(rewards) == 8
    assert sum(rewards[-3:]) / 3 > max(0.5, 3 * rewards[0]), rewards  # rewards[0]: the policy before any update
    report = json.loads((out / "eval.json").read_text())
    assert report["eval_reward"] > report["initial_eval_reward"]
    assert report["eval_monitor_river_share"] == pytest.approx(report["eval_reward"])
    assert (out / "model" / "model.safetensors").exists()
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["iteration"] for s in samples} == {0, 4} and all("completion" in s for s in samples)


def test_resume_continues_exactly_with_the_kl_controller_state(word_policy_dir, word_prompts, tmp_path, monkeypatch):
    from alignkit.rl.collector import RolloutCollector

    def config(out, *extra):
        return load_config(RLConfig, None, [
            f"output_dir={out}", f"model.name={word_policy_dir}", f"data.train={word_prompts}", "data.eval_fraction=0",
            "reward.kind=function", "reward.function=helpers:river_share", "rl.algo=rloo", "rl.samples_per_prompt=4",
            "rl.prompts_per_iteration=2", "rl.iterations=4", "rl.kl_target=0.5", "rl.kl_horizon=8",
            "train.batch_size=8", "train.micro_batch_size=4", "train.learning_rate=1e-3", "train.save_every=2",
            "generation.max_new_tokens=6", *extra])

    def curve(out):
        return [(r["reward"], r["kl_coef"], r["loss"]) for r in map(json.loads, (out / "metrics.jsonl").open())]

    run_rl(config(tmp_path / "straight"))
    original = RolloutCollector.collect

    def crash_at_iteration_3(self, model, iteration):
        if iteration == 3:
            raise KeyboardInterrupt
        return original(self, model, iteration)

    monkeypatch.setattr(RolloutCollector, "collect", crash_at_iteration_3)
    with pytest.raises(KeyboardInterrupt):
        run_rl(config(tmp_path / "interrupted"))
    monkeypatch.setattr(RolloutCollector, "collect", original)
    run_rl(config(tmp_path / "interrupted"), resume=True)
    straight, resumed = curve(tmp_path / "straight"), curve(tmp_path / "interrupted")
    assert len({beta for _, beta, _ in straight}) > 1  # the controller moved beta
    assert resumed == straight


def test_two_processes_log_and_adapt_to_the_metrics_of_all_completions(word_policy_dir, word_prompts, tmp_path):
    """torchrun with 2 gloo processes: each process's replies score its rank, so only the mean over both
    processes gives 0.5; both processes must agree on it (and on β) for the run to stay in step."""
    out = tmp_path / "two"
    settings = [f"output_dir={out}", f"model.name={word_policy_dir}", f"data.train={word_prompts}",
                "data.eval_fraction=0", "reward.kind=function", "reward.function=helpers:process_rank_reward",
                "rl.algo=rloo", "rl.samples_per_prompt=2", "rl.prompts_per_iteration=2", "rl.iterations=2",
                "rl.kl_target=0.5", "train.batch_size=4", "train.micro_batch_size=2", "generation.max_new_tokens=4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "alignkit.cli", "rl",
           *[arg for setting in settings for arg in ("--set", setting)]]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, [line for line in done.stderr.splitlines() if "rror" in line][:5]
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["reward"] for r in rows if "reward" in r] == [0.5, 0.5]
