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

from alignkit.config import ModelConfig, RewardSourceConfig, RLConfig, RLSettings, load_config
from alignkit.data.comparisons import tokenize_response
from alignkit.data.records import Prompt
from alignkit.errors import AlignkitError, ConfigError
from alignkit.losses.ppo import policy_loss
from alignkit.models import load_causal_lm, load_tokenizer
from alignkit.models.reference import FrozenCopy, logprobs_from
from alignkit.models.value import ActorCritic
from alignkit.rl.checkers import answer_value, extract_answer, gsm8k_correct
from alignkit.rl.collector import RolloutCollector
from alignkit.rl.estimators import ADVANTAGE_ESTIMATORS, advantage_name
from alignkit.rl.generation import END_OF_TURN, Completion, HFGenerator
from alignkit.rl.rewards import FunctionReward, GSM8KReward, ModelReward, build_monitors
from alignkit.rl.rollout import RolloutRow, collate_rollouts, compute_advantages, pad_responses, response_frame
from alignkit.tensors import token_logprobs
from alignkit.train.rl import RLStep, check_rl_config, run_rl
from alignkit.train.run import load_trainable_model


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


def test_ppo_advantages_of_completions_out_of_the_loss_are_zero_and_left_out_of_the_whitening():
    torch.manual_seed(1)
    old, ref, values = torch.randn(3, 4), torch.randn(3, 4), torch.randn(3, 4)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 0]], dtype=torch.bool)
    scores = torch.tensor([1.0, -0.5, 2.0])
    s = settings(algo="ppo", kl_coef=0.1, gamma=0.9, lam=0.8)
    out = compute_advantages(scores, old, ref, mask, s, 0.1, values, in_loss=torch.tensor([True, False, True]))
    raw, _ = slow_ppo_advantages(scores, old, ref, values, [4, 2, 3], 0.1, 0.9, 0.8)
    kept = [float(raw[b, t]) for b, n in ((0, 4), (2, 3)) for t in range(n)]
    mean = sum(kept) / len(kept)
    std = math.sqrt(sum((a - mean) ** 2 for a in kept) / (len(kept) - 1))
    expected = [[(float(raw[b, t]) - mean) / std if b != 1 and mask[b, t] else 0.0 for t in range(4)] for b in range(3)]
    assert torch.allclose(out.advantages, torch.tensor(expected), atol=1e-5)


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


def slow_group(rewards, group):
    """(r_i - mean of its group) / (the group's sample std + 1e-4), in plain Python."""
    out = []
    for i, r in enumerate(rewards):
        members = rewards[i // group * group : i // group * group + group]
        mean = sum(members) / group
        std = math.sqrt(sum((m - mean) ** 2 for m in members) / (group - 1))
        out.append((r - mean) / (std + 1e-4))
    return out


def fixed_batch():
    """Four replies (two prompts of two), their log-probs, reference log-probs, values and rewards."""
    gen = torch.Generator().manual_seed(3)
    old, ref, values = (torch.randn(4, 3, generator=gen) for _ in range(3))
    mask = torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0], [1, 1, 1]], dtype=torch.bool)
    return torch.tensor([1.0, -0.5, 2.0, 0.25]), old, ref, values, mask


def expected_advantages(name, scores, old, ref, values, mask, beta):
    """Each estimator's advantages from the slow references, per token (sequence-level ones broadcast)."""
    if name == "gae":
        return slow_ppo_advantages(scores, old, ref, values, [3, 2, 1, 3], beta, 0.9, 0.8)[0]
    penalised = [float(scores[b]) - beta * sum(float(old[b, t] - ref[b, t]) for t in range(3) if mask[b, t])
                 for b in range(4)]
    sequence = slow_group(penalised, 2) if name == "group" else slow_rloo(penalised, 2)
    return torch.tensor(sequence).unsqueeze(1) * mask


def test_the_advantage_estimators_are_chosen_by_name():
    assert list(ADVANTAGE_ESTIMATORS) == ["gae", "group", "leave_one_out"]
    for name in ADVANTAGE_ESTIMATORS:  # the config offers exactly the registry's names
        assert load_config(RLConfig, None, [f"rl.advantage={name}"]).rl.advantage == name
    with pytest.raises(ConfigError) as info:
        load_config(RLConfig, None, ["rl.advantage=reinforce"])
    assert "'rl.advantage' must be one of 'gae', 'group', 'leave_one_out', got 'reinforce'" in str(info.value)


@pytest.mark.parametrize(("algo", "name"), [("ppo", "gae"), ("grpo", "group"), ("rloo", "leave_one_out")])
def test_each_algo_defaults_to_its_estimator_with_the_same_advantages_as_before(algo, name):
    scores, old, ref, values, mask = fixed_batch()
    fields = {"algo": algo, "samples_per_prompt": 2, "gamma": 0.9, "lam": 0.8, "whiten_advantages": False}
    expected = expected_advantages(name, scores, old, ref, values, mask, 0.1)
    for chosen in (None, name):  # unset: the algo's estimator; set to it: the same numbers
        out = compute_advantages(scores, old, ref, mask, settings(**fields, advantage=chosen), 0.1, values)
        assert torch.allclose(out.advantages, expected, atol=1e-5)
    assert advantage_name(settings(algo=algo)) == name


def test_a_set_advantage_estimator_is_kept_whatever_the_algo_would_choose():
    config = load_config(RLConfig, None, ["rl.algo=grpo", "rl.samples_per_prompt=2", "rl.advantage=leave_one_out"])
    assert advantage_name(config.rl) == "leave_one_out"
    scores, old, ref, values, mask = fixed_batch()
    out = compute_advantages(scores, old, ref, mask, config.rl, 0.1)
    assert torch.allclose(out.advantages, expected_advantages("leave_one_out", scores, old, ref, values, mask, 0.1),
                          atol=1e-5)


def test_advantage_estimators_that_cannot_work_with_the_algo_are_errors():
    def check(*overrides):
        with pytest.raises(ConfigError) as info:
            check_rl_config(load_config(RLConfig, None, list(overrides)))
        return str(info.value)

    assert "rl.advantage: gae needs a value model" in check("rl.algo=grpo", "rl.samples_per_prompt=2",
                                                             "rl.advantage=gae")
    assert "rl.advantage: group" in check("rl.advantage=group", "rl.samples_per_prompt=2")  # ppo trains a critic
    assert "at least 2" in check("rl.algo=grpo", "rl.advantage=leave_one_out")
    scale = check("rl.algo=grpo", "rl.samples_per_prompt=2", "rl.advantage=leave_one_out", "rl.group_scale=none")
    assert "rl.group_scale" in scale and "rl.advantage is 'leave_one_out'" in scale
    check_rl_config(load_config(RLConfig, None, ["rl.algo=rloo", "rl.samples_per_prompt=2", "rl.advantage=group"]))


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
    assert "rl.kl_coef_min (0.1) is above rl.kl_coef (0.05)" in check("rl.kl_target=3", "rl.kl_coef_min=0.1")
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
    assert [answer_value(r) for r in ("The answer is $1,000.", "1000.0", "It is 2.50", "none")] == [
        "1000", "1000", "2.5", None]
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


PROMPT = ({"role": "user", "content": "Name a river."},)


def test_an_unfinished_reply_is_rendered_without_the_end_of_turn(tokenizer):
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    header = tokenizer(tokenizer.apply_chat_template(list(PROMPT), tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"]
    reply = tokenizer("The Nile is", add_special_tokens=False)["input_ids"]
    finished = tokenize_response(PROMPT, "The Nile is", tokenizer, 256, "reply")
    cut = tokenize_response(PROMPT, "The Nile is", tokenizer, 256, "reply", finished=False)
    assert finished.input_ids[: len(header) + len(reply)] == header + reply
    assert finished.input_ids[len(header) + len(reply)] == end_of_turn  # the template closes a finished turn
    assert cut.input_ids == header + reply and end_of_turn not in cut.input_ids[len(header) :]
    assert cut.labels == [-100] * len(header) + reply


@pytest.fixture(scope="module")
def tiny_reward_dir(tmp_path_factory, tiny_model_dir, tokenizer):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    net = AutoModelForSequenceClassification.from_pretrained(tiny_model_dir, num_labels=1)
    out = tmp_path_factory.mktemp("reward") / "model"
    net.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_the_reward_model_scores_an_unfinished_reply_without_the_end_of_turn(tiny_reward_dir, tokenizer):
    from transformers import AutoModelForSequenceClassification

    net = AutoModelForSequenceClassification.from_pretrained(tiny_reward_dir).eval()
    text = tokenizer.apply_chat_template(list(PROMPT), tokenize=False, add_generation_prompt=True) + "The Nile is"
    with torch.no_grad():
        open_reply = float(net(input_ids=tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"])
                           .logits[0, 0])
        closed = float(net(input_ids=tokenizer(text + END_OF_TURN + "\n", add_special_tokens=False,
                                               return_tensors="pt")["input_ids"]).logits[0, 0])
    reward = ModelReward(RewardSourceConfig(kind="model", path=str(tiny_reward_dir)))
    prompts = [Prompt(PROMPT)] * 2
    completions = [Completion("The Nile is", (1,), 1, False), Completion("The Nile is", (1,), 1, True)]
    assert reward(prompts, completions).tolist() == pytest.approx([open_reply, closed], abs=1e-5)
    assert abs(open_reply - closed) > 1e-3  # the end-of-turn token changes the score


def test_a_reward_model_monitor_logs_its_scores_and_names_must_differ(tiny_reward_dir, word_policy_dir,
                                                                         word_prompts, tmp_path):
    out = tmp_path / "run"
    run_rl(load_config(RLConfig, None, [
        f"output_dir={out}", f"model.name={word_policy_dir}", f"data.train={word_prompts}", "data.eval_fraction=0",
        "reward.kind=function", "reward.function=helpers:river_share", "rl.algo=rloo", "rl.samples_per_prompt=2",
        "rl.prompts_per_iteration=2", "rl.iterations=1", "rl.sample_every=1", "train.batch_size=4",
        "train.micro_batch_size=4", "generation.max_new_tokens=6",
        f"rl.monitors=[{tiny_reward_dir}, helpers:river_share]",
    ]))
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    reward = ModelReward(RewardSourceConfig(kind="model", path=str(tiny_reward_dir)))
    expected = reward([Prompt(tuple(row["prompt"])) for row in samples],
                      [Completion(row["completion"], (1,), 1, row["finished"]) for row in samples])
    assert [row["monitor_model"] for row in samples] == pytest.approx(expected.tolist(), abs=1e-5)
    assert all(row["monitor_river_share"] == pytest.approx(row["reward"]) for row in samples)
    with pytest.raises(ConfigError, match="monitor_model"):
        build_monitors([str(tiny_reward_dir), f"{tiny_reward_dir}/"], 64)
    with pytest.raises(ConfigError, match="no such folder"):
        build_monitors([str(tmp_path / "missing")], 64)


def collect_once(policy_dir, run_dir, *overrides):
    """One iteration of RLOO (8 replies to each of 2 prompts, 6 tokens at most, reward: reply length
    in tokens, β = 0) collected with a tokenizer whose eos is ' river', so some replies finish and
    some are cut. Returns the rows, the metrics and each reply's response length and finished flag."""
    tokenizer = load_tokenizer(str(policy_dir))
    (river,) = tokenizer.encode(" river", add_special_tokens=False)
    tokenizer.eos_token = tokenizer.convert_ids_to_tokens(river)
    config = load_config(RLConfig, None, [
        f"output_dir={run_dir}", f"model.name={policy_dir}", "reward.kind=function",
        "reward.function=helpers:reply_tokens", "rl.algo=rloo", "rl.samples_per_prompt=8",
        "rl.prompts_per_iteration=2", "rl.kl_coef=0", "train.batch_size=16", "train.micro_batch_size=16",
        "generation.max_new_tokens=6", *overrides])
    prompts = [Prompt(({"role": "user", "content": f"Tell me about {word}"},)) for word in WORDS[:2]]
    reference = FrozenCopy(load_causal_lm(config.model), torch.device("cpu"))
    step = RLStep(config, tokenizer.pad_token_id)
    model = ActorCritic(load_causal_lm(config.model))
    collector = RolloutCollector(config, prompts, [], tokenizer, FunctionReward(config.reward.function), reference,
                                 HFGenerator(model.policy, tokenizer), run_dir)
    rows, metrics = collector.collect(model, 0)
    stops = {river, tokenizer.convert_tokens_to_ids(END_OF_TURN)}
    replies = [(r.response_length, r.input_ids[-1] in stops) for r in rows]
    assert 0 < sum(done for _, done in replies) < len(replies)  # both kinds, so the checks can tell
    assert metrics["unfinished"] == sum(not done for _, done in replies) / len(replies)
    assert metrics["sampler_logprob_gap"] < 1e-4  # the rollouts come from the policy the update starts from
    return rows, metrics, replies, step


def slow_rloo(rewards, group):
    """r_i minus the mean of the other rewards of its group, in plain Python."""
    out = []
    for i, r in enumerate(rewards):
        others = [rewards[j] for j in range(i // group * group, i // group * group + group) if j != i]
        out.append(r - sum(others) / len(others))
    return out


@pytest.mark.parametrize(("mode", "penalty"), [("penalty", 2.5), ("score", 0.0), ("drop", 0.0)])
def test_unfinished_replies_are_penalised_scored_or_dropped(mode, penalty, word_policy_dir, tmp_path):
    extra = [f"rl.unfinished_penalty={penalty}"] if mode == "penalty" else []
    rows, metrics, replies, step = collect_once(word_policy_dir, tmp_path, f"rl.unfinished={mode}", *extra)
    rewards = [length - (penalty if not done else 0.0) for length, done in replies]
    assert metrics["reward"] == pytest.approx(sum(length for length, _ in replies) / len(replies))
    assert metrics["reward_penalised"] == pytest.approx(sum(rewards) / len(rewards))
    in_loss = [done or mode != "drop" for _, done in replies]
    expected = [a if kept else 0.0 for a, kept in zip(slow_rloo(rewards, 8), in_loss, strict=True)]
    assert [float(r.advantages[0]) for r in rows] == pytest.approx(expected, abs=1e-5)
    assert all(torch.all(r.advantages == r.advantages[0]) for r in rows)
    batch = step.collate(rows)
    assert batch["response_mask"].sum(1).tolist() == [n if kept else 0 for (n, _), kept in zip(replies, in_loss,
                                                                                                strict=True)]
    assert step.count(batch) == sum(n for (n, _), kept in zip(replies, in_loss, strict=True) if kept)


def test_the_unfinished_penalty_needs_the_penalty_mode():
    with pytest.raises(ConfigError, match="rl.unfinished_penalty"):
        load_config(RLConfig, None, ["rl.unfinished=drop", "rl.unfinished_penalty=2"])
    check_rl_config(load_config(RLConfig, None, ["rl.unfinished=drop"]))


@pytest.mark.parametrize("algo", ["ppo", "grpo", "rloo"])
def test_a_tiny_policy_learns_a_planted_reward(algo, word_policy_dir, word_prompts, tmp_path):
    out = tmp_path / algo
    config = load_config(RLConfig, None, [
        f"output_dir={out}", f"model.name={word_policy_dir}", f"data.train={word_prompts}", "data.eval_fraction=0.2",
        "reward.kind=function", "reward.function=helpers:river_share", f"rl.algo={algo}",
        "rl.samples_per_prompt=8", "rl.prompts_per_iteration=4", "rl.ppo_epochs=2", "rl.iterations=8",
        "rl.kl_coef=0.01", "rl.eval_prompts=3", "rl.sample_every=4",
        "train.batch_size=16", "train.micro_batch_size=16", "train.learning_rate=1e-3",
        "generation.max_new_tokens=8", "rl.monitors=[helpers:river_share]",
        *(["rl.critic=head"] if algo == "ppo" else []),  # the value model's settings act only under ppo
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


def test_the_first_update_sees_a_ratio_of_one_with_lora_dropout(word_policy_dir, word_prompts, tmp_path,
                                                              monkeypatch):
    """Old log-probs come from a no-gradient pass, the first update's from a training pass: before
    any update they must be the same numbers, whatever dropout the adapters have."""
    import alignkit.train.rl as rl

    firsts = []

    def recording_policy_loss(logp, old_logp, *args):
        firsts.append((logp.detach().clone(), old_logp.clone(), args[1].clone()))
        return policy_loss(logp, old_logp, *args)

    def with_working_adapters(*args):  # B starts at 0, which would hide the adapters' dropout
        model = load_trainable_model(*args)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, weight in model.named_parameters():
                if "lora_B" in name:
                    weight.copy_(torch.randn(weight.shape, generator=gen))
        return model

    monkeypatch.setattr(rl, "policy_loss", recording_policy_loss)
    monkeypatch.setattr(rl, "load_trainable_model", with_working_adapters)
    run_rl(load_config(RLConfig, None, [
        f"output_dir={tmp_path / 'run'}", f"model.name={word_policy_dir}", f"data.train={word_prompts}",
        "data.eval_fraction=0", "reward.kind=function", "reward.function=helpers:river_share", "rl.algo=rloo",
        "rl.samples_per_prompt=4", "rl.prompts_per_iteration=2", "rl.iterations=1", "lora.enabled=true",
        "lora.dropout=0.5", "train.batch_size=8", "train.micro_batch_size=8", "generation.max_new_tokens=6"]))
    logp, old_logp, mask = firsts[0]
    ratio = torch.exp(logp - old_logp)[mask]
    assert ratio.numel() > 8 and torch.allclose(ratio, torch.ones_like(ratio), atol=1e-5), ratio


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
