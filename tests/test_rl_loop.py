"""The seams of one RL iteration on tiny models: the KL coefficient that travels with the rollout rows, and
the generation backend the run samples with and syncs after each iteration's updates."""

import torch
from helpers import WORDS, write_jsonl

from alignkit.config import ModelConfig, RLConfig, load_config
from alignkit.data.records import Prompt
from alignkit.models import load_causal_lm, load_tokenizer
from alignkit.models.reference import FrozenCopy
from alignkit.models.value import ActorCritic
from alignkit.rl.collector import RolloutCollector
from alignkit.rl.generation import HFGenerator
from alignkit.rl.rewards import FunctionReward
from alignkit.rl.rollout import RolloutRow
from alignkit.tensors import token_logprobs
from alignkit.train.rl import RLStep, run_rl


def rloo_collector(policy_dir, run_dir, *overrides):
    """A collector of RLOO rollouts (2 replies to each of 2 prompts, 4 tokens at most, reward: reply length)
    sampled from the actor-critic it returns with it."""
    config = load_config(RLConfig, None, [
        f"output_dir={run_dir}", f"model.name={policy_dir}", "reward.kind=function",
        "reward.function=helpers:reply_tokens", "rl.algo=rloo", "rl.samples_per_prompt=2",
        "rl.prompts_per_iteration=2", "train.batch_size=4", "train.micro_batch_size=4",
        "generation.max_new_tokens=4", *overrides])
    prompts = [Prompt(({"role": "user", "content": f"Tell me about {word}"},)) for word in WORDS[:2]]
    reference = FrozenCopy(load_causal_lm(config.model), torch.device("cpu"))
    model, tokenizer = ActorCritic(load_causal_lm(config.model)), load_tokenizer(str(policy_dir))
    reward, generator = FunctionReward(config.reward.function), HFGenerator(model.policy, tokenizer)
    return RolloutCollector(config, prompts, [], tokenizer, reward, reference, generator, run_dir), model


def test_the_collected_rows_carry_the_kl_coefficient_of_their_iteration(tiny_model_dir, tmp_path):
    collector, model = rloo_collector(tiny_model_dir, tmp_path)
    collector.controller.value = 0.25  # as the adaptive controller leaves it after some iterations
    rows, metrics = collector.collect(model, 0)
    assert [row.kl_coef for row in rows] == [0.25] * 4 and metrics["kl_coef"] == 0.25


def test_the_kl_term_of_the_loss_uses_the_coefficient_each_row_carries(tiny_model_dir):
    """With zero advantages the loss is the KL term alone: Σ_rows β_row Σ_t k3_t, with each row's β
    (0.3 and 0.7), not the config's initial rl.kl_coef (0.05)."""
    config = load_config(RLConfig, None, ["rl.algo=rloo", "rl.samples_per_prompt=2", "rl.kl_penalty=loss",
                                          "rl.kl_estimator=k3", "rl.kl_coef=0.05", "generation.temperature=0.7"])
    step = RLStep(config, pad_token_id=0)
    model = ActorCritic(load_causal_lm(ModelConfig(name=str(tiny_model_dir))))
    gen = torch.Generator().manual_seed(0)
    sequences = [([11, 12, 13], [7, 8]), ([14, 15], [5, 6, 9])]
    refs = [-torch.rand(len(response), generator=gen) * 8 for _, response in sequences]
    betas = [0.3, 0.7]
    rows = [RolloutRow(prompt + response, len(prompt), torch.zeros(len(response)), ref, torch.zeros(len(response)),
                       kl_coef=beta) for (prompt, response), ref, beta in zip(sequences, refs, betas, strict=True)]
    batch = step.collate(rows)
    with torch.no_grad():
        out = step.loss(model, batch)
        logits = model.policy(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        logps = token_logprobs(logits, batch["labels"], temperature=0.7)[0]
    expected = 0.0
    for b, ((prompt, response), ref, beta) in enumerate(zip(sequences, refs, betas, strict=True)):
        for j in range(len(response)):
            log_r = float(ref[j]) - float(logps[b, len(prompt) - 1 + j])  # log π_ref/π of response token j
            expected += beta * (torch.tensor(log_r).exp().item() - 1 - log_r)
    assert abs(float(out.loss_sum) - expected) < 1e-4 * max(1.0, abs(expected)), (float(out.loss_sum), expected)


class RecordingBackend:
    """A generation backend that samples with the transformers one and records, at each call, the sum of
    the policy's weights: which calls came between which updates."""

    def __init__(self, model, tokenizer):
        self.inner = HFGenerator(model, tokenizer)
        self.calls = []

    def weights(self, model) -> float:
        return float(sum(p.detach().double().sum() for p in model.parameters()))

    def generate(self, prompts, config):
        self.calls.append(("generate", len(prompts), self.weights(self.inner.model)))
        return self.inner.generate(prompts, config)

    def generate_ids(self, rows, config):
        self.calls.append(("generate", len(rows), self.weights(self.inner.model)))
        return self.inner.generate_ids(rows, config)

    def sync_weights(self, model):
        assert model is self.inner.model  # the policy being trained
        self.calls.append(("sync", None, self.weights(model)))


def test_the_run_samples_with_its_generation_backend_and_syncs_it_after_each_iterations_updates(
        tiny_model_dir, tmp_path, monkeypatch):
    import alignkit.train.rl as rl

    backends = []

    def recording(model, tokenizer):
        backends.append(RecordingBackend(model, tokenizer))
        return backends[-1]

    monkeypatch.setattr(rl, "HFGenerator", recording)
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"Tell me about {word}"} for word in WORDS])
    run_rl(load_config(RLConfig, None, [
        f"output_dir={tmp_path / 'run'}", f"model.name={tiny_model_dir}", f"data.train={prompts}",
        "data.eval_fraction=0.2", "reward.kind=function", "reward.function=helpers:first_token_parity",
        "rl.algo=rloo", "rl.samples_per_prompt=4", "rl.prompts_per_iteration=2", "rl.iterations=3", "rl.eval_prompts=2",
        "train.batch_size=8", "train.micro_batch_size=8", "train.learning_rate=1e-2", "generation.max_new_tokens=4"]))
    (backend,) = backends
    kinds = [(kind, n) for kind, n, _ in backend.calls]
    assert kinds == [("generate", 2)] + [("generate", 8), ("sync", None)] * 3 + [("generate", 2)]  # eval, 3 its, eval
    weights = [w for _, _, w in backend.calls]
    for i in (1, 3, 5):  # each iteration: sampled with the weights of the last sync, synced after its update
        assert weights[i] == weights[i - 1] and weights[i + 1] != weights[i]
    assert weights[7] == weights[6]
