"""What the TRL side-by-side scripts share: alignkit's ``train.max_minutes`` as a TRL callback, and the tokens
a TRL run trained on, counted as alignkit counts them."""

import time

from transformers import TrainerCallback


class TimeBudget(TrainerCallback):
    """Ends training after the first optimizer step that finishes past ``seconds`` of wall-clock time (the
    contract of alignkit's ``train.max_minutes``); ``stopped`` says whether it did."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.start = time.perf_counter()
        self.stopped = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if time.perf_counter() - self.start >= self.seconds and state.global_step < state.max_steps:
            control.should_training_stop = self.stopped = True


def add_time_budget(trainer, max_minutes: float | None) -> TimeBudget | None:
    """``trainer`` with a :class:`TimeBudget` of ``max_minutes`` (none when it is None)."""
    if max_minutes is None:
        return None
    budget = TimeBudget(max_minutes * 60)
    trainer.add_callback(budget)
    return budget


def tokens_trained(tokens: int, pairs: int, epochs: int, steps: int, batch_size: int, cut_short: bool) -> float:
    """Tokens of the pairs a run consumed: ``tokens`` (all ``pairs``) x ``epochs`` for a run that went through
    its epochs; for one cut short (a step limit or a time budget), which pairs TRL drew is not tracked, so the
    mean tokens per pair x the pairs consumed (``steps`` x ``batch_size``)."""
    if cut_short:
        return tokens / pairs * steps * batch_size
    return tokens * epochs
