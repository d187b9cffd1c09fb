"""Reinforcement learning from a reward: sampling from a policy (generation backends), and later
rollouts, advantage estimators and KL control."""
