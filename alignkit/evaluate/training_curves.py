"""Reward-hacking signs in an RL run's training curves (its ``metrics.jsonl`` rows).

Per logged iteration an RL run records, over that iteration's rollouts, the proxy reward it optimises
(``reward``), every monitored reward it only logs (``monitor_<name>``, e.g. a gold reward), the KL to the
reference summed over a reply (``kl``), the mean reply length (``length``) and the Pearson correlation of
reward and length (``reward_length_corr``). :func:`rl_curve_diagnostics` gathers them and, for the proxy
and each monitor, fits Gao et al.'s RL form R(d) = d(α − β log d) to the reward gained since the first
logged iteration against d = √KL (:func:`~alignkit.evaluate.overoptimisation.fit_gao`) and finds the
observed peak (:func:`~alignkit.evaluate.overoptimisation.observed_peak`). A proxy that keeps rising
while a monitor peaks and falls is over-optimisation; length and the reward–length correlation rising
together suggest the reward is being earned by length.
"""

from __future__ import annotations

import dataclasses
import math

from alignkit.evaluate.overoptimisation import fit_gao, observed_peak

RL_KEYS = ("reward", "kl", "length")
"""The metrics a row must hold to be an RL iteration."""

PEAK_WINDOW = 5
"""Points of the centred moving mean that smooths a reward curve before its peak is read."""


def rl_curve_diagnostics(rows: list[dict]) -> dict | None:
    """The training-curve diagnostics of an RL run from its metrics rows, or None when no row holds all
    of :data:`RL_KEYS` (not an RL run). Returns::

        {"steps": [...], "length": [...], "reward_length_corr": [...], "kl": [...], "sqrt_kl": [...],
         "rewards": {"reward": CURVE, "monitor_<name>": CURVE, ...}}

    one entry per RL iteration row, where d = √max(KL, 0) (the per-iteration KL is an estimate and can
    dip below 0) and CURVE is ``{"values": [...], "gain": [...], "fit": ..., "observed_peak": ...}``:
    gain is the value minus that of the first logged iteration (the policy before any update when every
    iteration is logged), "fit" the :class:`~alignkit.evaluate.overoptimisation.GaoFit` of the RL form as a
    dict (or ``{"error": why}`` when it cannot be fitted, e.g. fewer than two distinct d > 0) and
    "observed_peak" ``{"d", "reward", "index"}`` of the gain smoothed over :data:`PEAK_WINDOW` points. A
    monitor counts when every RL row holds it.
    """
    iterations = [row for row in rows if all(key in row for key in RL_KEYS)]
    if not iterations:
        return None
    sqrt_kl = [math.sqrt(max(float(row["kl"]), 0.0)) for row in iterations]
    monitors = sorted(key for key in iterations[0] if key.startswith("monitor_")
                      and all(key in row for row in iterations))
    return {
        "steps": [row["step"] for row in iterations],
        "length": [row["length"] for row in iterations],
        "reward_length_corr": [row.get("reward_length_corr", math.nan) for row in iterations],
        "kl": [row["kl"] for row in iterations],
        "sqrt_kl": sqrt_kl,
        "rewards": {key: reward_curve(sqrt_kl, [row[key] for row in iterations]) for key in ["reward", *monitors]},
    }


def reward_curve(sqrt_kl: list[float], values: list[float]) -> dict:
    """One reward's curve against √KL: its values, the gain over the first value, the Gao RL-form fit
    and the observed peak (see :func:`rl_curve_diagnostics`)."""
    gain = [value - values[0] for value in values]
    try:
        fit = dataclasses.asdict(fit_gao(sqrt_kl, gain, "rl"))
    except ValueError as exc:
        fit = {"error": str(exc)}
    peak = dataclasses.asdict(observed_peak(sqrt_kl, gain, PEAK_WINDOW))
    return {"values": values, "gain": gain, "fit": fit, "observed_peak": peak}
