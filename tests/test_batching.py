"""The batch schedule: deterministic, a function of the step only, the same global batch for any process count."""

import pytest

from alignkit.errors import ConfigError
from alignkit.train.batching import BatchPlan


def test_global_batch_is_the_same_for_one_and_two_processes():
    one = BatchPlan(40, batch_size=8, micro_batch_size=2, num_processes=1, seed=3)
    two = BatchPlan(40, batch_size=8, micro_batch_size=2, num_processes=2, seed=3)
    assert one.accumulation == 4 and two.accumulation == 2
    for step in range(12):
        union = sorted(i for rank in range(2) for mb in two.micro_batches(step, rank) for i in mb)
        assert union == sorted(i for mb in one.micro_batches(step, 0) for i in mb)


def test_each_epoch_visits_every_example_at_most_once_and_reshuffles():
    plan = BatchPlan(10, batch_size=4, micro_batch_size=2, num_processes=1, seed=0)
    assert plan.steps_per_epoch == 2
    epoch0 = plan.global_batch(0) + plan.global_batch(1)
    epoch1 = plan.global_batch(2) + plan.global_batch(3)
    assert len(set(epoch0)) == 8 and len(set(epoch1)) == 8
    assert epoch0 != epoch1


def test_schedule_depends_only_on_seed_and_step():
    a = BatchPlan(30, batch_size=6, micro_batch_size=3, num_processes=1, seed=7)
    b = BatchPlan(30, batch_size=6, micro_batch_size=3, num_processes=1, seed=7)
    assert [a.global_batch(s) for s in range(9)] == [b.global_batch(s) for s in range(9)]


def test_indivisible_batch_size_names_the_keys():
    expected = r"'train.batch_size' \(6\) must be a multiple of 'train.micro_batch_size' \(4\)"
    with pytest.raises(ConfigError, match=expected):
        BatchPlan(30, batch_size=6, micro_batch_size=4, num_processes=1, seed=0)


def test_batch_larger_than_dataset_is_an_error():
    with pytest.raises(ConfigError, match="larger than the training set"):
        BatchPlan(3, batch_size=4, micro_batch_size=2, num_processes=1, seed=0)
