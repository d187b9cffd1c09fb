"""The output layer run at listed positions only gives exactly the full forward's logits there, and
their gradients, through a plain model and a LoRA-wrapped one, and leaves the model unhooked."""

import pytest
import torch

from alignkit.config import LoraConfig, ModelConfig
from alignkit.models import apply_lora, load_causal_lm
from alignkit.models.output_layer import logits_at


@pytest.mark.parametrize("lora", [False, True])
def test_logits_at_listed_positions_match_the_full_forward(tiny_model_dir, lora):
    torch.manual_seed(0)
    model = load_causal_lm(ModelConfig(name=str(tiny_model_dir)))
    if lora:
        model = apply_lora(model, LoraConfig(enabled=True, r=4, alpha=8))
    input_ids = torch.randint(1, 200, (3, 9))
    rows, columns = torch.tensor([0, 0, 2, 1, 2]), torch.tensor([0, 4, 4, 2, 0])  # columns of the last 5

    def run(select):
        model.zero_grad()
        logits = select()
        (logits * torch.linspace(-1, 1, logits.shape[-1])).sum().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    full, full_grads = run(lambda: model(input_ids=input_ids, logits_to_keep=5).logits[rows, columns])
    picked, grads = run(lambda: logits_at(model, rows, columns, input_ids=input_ids, logits_to_keep=5))
    assert picked.shape == (5, full.shape[-1])
    torch.testing.assert_close(picked, full, rtol=1e-5, atol=1e-5)
    assert len(grads) == len(full_grads) > 0
    for grad, expected in zip(grads, full_grads, strict=True):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-4)
    assert model(input_ids=input_ids).logits.shape == (3, 9, full.shape[-1])  # the hook is gone


def test_the_sft_step_loss_equals_the_full_logits_loss(tiny_model_dir):
    from alignkit.losses.sft import masked_token_correct, masked_token_nll
    from alignkit.tensors import IGNORE_INDEX
    from alignkit.train.sft import SFTStep

    torch.manual_seed(0)
    model = load_causal_lm(ModelConfig(name=str(tiny_model_dir)))
    input_ids = torch.randint(1, 200, (2, 8))
    labels = input_ids.clone()
    labels[0, :3] = IGNORE_INDEX  # a prompt
    labels[1, 6:] = IGNORE_INDEX  # padding
    batch = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids), "labels": labels}
    out = SFTStep(pad_token_id=0).loss(model, batch)
    logits = model(input_ids=input_ids).logits
    torch.testing.assert_close(out.loss_sum, masked_token_nll(logits, labels)[0], rtol=1e-5, atol=1e-5)
    assert int(out.sums["token_accuracy"]) == int(masked_token_correct(logits, labels))
