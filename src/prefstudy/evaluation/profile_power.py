"""Power of claim (b)'s candidate estimands by simulation (issue #32): which statistic of two learning-rate profiles
detects a planted shift of the decline with the smallest effect, at a given cost, with honest intervals?

A **world** gives the second method's (DPO's) chance of winning each pair at each learning rate of the grid, the
first method's (IPO's) the same curve moved ``shift`` decades to the right (:func:`profile_shift.shifted`), and the
two sources of noise the stage's interval clusters over: pairs (``pairs`` rows of per-pair chances, so a plasmode
world can carry real pairs' profiles) and training seeds (a run's offset on the logit scale, SD ``seed_sd``, drawn
per learning rate and seed). A **design** is the number of seeds and of pairs scored per run.

:func:`simulate` draws stages from a world, estimates each candidate with the seed-and-pair clustered interval of
:mod:`prefstudy.evaluation.clustered` exactly as the stage will, and counts: coverage of the candidate's true value
(its value on the noise-free world), detection (the interval excludes 0), and fits that were not identified.
:func:`mde_decades` turns detection rates at several planted shifts into the smallest shift detected 80% of the time,
the common currency of candidates measured in different units.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, logit

from prefstudy.evaluation.clustered import ClusteredEstimate, Data, crossed
from prefstudy.evaluation.profile_shift import shifted

Candidate = Callable[[Sequence[float]], Callable[[Data], float]]  # grid -> statistic on {"ipo", "dpo"}


@dataclass(frozen=True)
class World:
    log_lrs: tuple[float, ...]
    chances: np.ndarray  # [lrs, pairs]: DPO's chance of winning each pair at each learning rate
    shift: float  # planted: IPO's profile sits this many decades to the right
    seed_sd: float = 0.1  # a run's offset, logit scale
    first: np.ndarray | None = None  # [lrs, pairs]: IPO's own chances (before the planted shift); None: DPO's

    def truth(self) -> dict[str, np.ndarray]:
        """The noise-free stage: each method's chances, ``[lrs, 1 beta slot, 1 seed, pairs]`` as the stage stores
        its runs (:mod:`prefstudy.evaluation.lr_profile`; slot 0 is the tuned beta). With ``first`` (a world of both
        methods' own per-pair chances, so pairs that favour one method's profile over the other's are real), IPO's
        chances are its own moved ``shift`` to the right, and the truth is the world's own shift plus the planted."""
        dpo = self.chances
        ipo = shifted(self.log_lrs, dpo if self.first is None else self.first, self.shift)
        return {"ipo": ipo[:, None, None, :], "dpo": dpo[:, None, None, :]}

    def draw(self, seeds: int, pairs: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """One stage at the tuned beta: ``seeds`` runs per learning rate and method, ``pairs`` pairs (drawn from the
        world's) scored by each; wins are 0/1; ``[lrs, 1, seeds, pairs]``. Both methods read the same pairs."""
        idx = rng.integers(0, self.chances.shape[1], pairs)
        out = {}
        for method, p in self.truth().items():
            base = logit(np.clip(p[:, 0, 0, idx], 1e-4, 1 - 1e-4))[:, None, :]  # [lrs, 1, pairs]
            offset = rng.normal(0.0, self.seed_sd, (len(self.log_lrs), seeds, 1))
            wins = rng.random((len(self.log_lrs), seeds, pairs)) < expit(base + offset)
            out[method] = wins.astype(float)[:, None]  # [lrs, 1 slot, seeds, pairs]
        return out


def parametric_world(log_lrs: Sequence[float], curve: np.ndarray, shift: float, pair_sd: float = 1.0,
                     n_pairs: int = 2000, seed_sd: float = 0.1, seed: int = 0) -> World:
    """A world whose pairs differ in difficulty: pair j's chance is ``expit(logit(curve) + u_j)``, ``u_j ~ N(0,
    pair_sd)`` (the same pair is easy or hard at every learning rate)."""
    rng = np.random.default_rng(seed)
    u = rng.normal(0.0, pair_sd, n_pairs)
    chances = expit(logit(np.clip(np.asarray(curve, dtype=float), 1e-4, 1 - 1e-4))[:, None] + u[None, :])
    return World(tuple(float(x) for x in log_lrs), chances, shift, seed_sd)


@dataclass
class Tally:
    truth: float
    estimates: list[float]
    seed_variances: list[float] = field(default_factory=list)  # the interval's seed part, per stage
    pair_variances: list[float] = field(default_factory=list)  # its pair component
    mdes: list[float] = field(default_factory=list)  # the MDE each stage's interval reports
    covered: int = 0
    detected: int = 0  # the interval excludes 0 on the side of the truth (or on either side when the truth is 0)
    not_identified: int = 0
    sims: int = 0
    below: int = 0  # intervals wholly below 0 (a "contradicted"), whatever the truth
    above: int = 0  # wholly above 0 (a "supported")

    @property
    def coverage(self) -> float:
        done = self.sims - self.not_identified
        return self.covered / done if done else float("nan")

    @property
    def power(self) -> float:
        return self.detected / self.sims if self.sims else float("nan")


Interval = Callable[..., ClusteredEstimate]  # (statistic, data, n_boot=, seed=) -> estimate with interval


def simulate(world: World, seeds: int, pairs: int, candidates: Mapping[str, Candidate], n_sims: int,
             n_boot: int = 200, seed: int = 0, interval: Interval = crossed) -> dict[str, Tally]:
    """Draw ``n_sims`` stages from ``world`` and tally every candidate (module docstring) with ``interval`` (the
    stage's primary uses :func:`prefstudy.evaluation.clustered.crossed` since the 2026-12-06 amendment; the
    pre-registered design used ``clustered``). A stage whose estimate is not finite counts as not identified and not
    detected."""
    rng = np.random.default_rng(seed)
    truth_data = world.truth()
    stats = {name: make(world.log_lrs) for name, make in candidates.items()}
    tallies = {name: Tally(float(s(truth_data)), []) for name, s in stats.items()}
    for _ in range(n_sims):
        data = world.draw(seeds, pairs, rng)
        for name, statistic in stats.items():
            t = tallies[name]
            t.sims += 1
            est = interval(statistic, data, n_boot=n_boot, seed=int(rng.integers(1 << 31)))
            if not (np.isfinite(est.ci_low) and np.isfinite(est.ci_high)):
                t.not_identified += 1
                continue
            t.estimates.append(est.estimate)
            t.seed_variances.append(est.seed_part)
            t.pair_variances.append(est.pair_variance)
            t.mdes.append(est.mde)
            t.covered += est.ci_low <= t.truth <= est.ci_high
            t.detected += (est.ci_low > 0) if t.truth >= 0 else (est.ci_high < 0)
            t.below += est.ci_high < 0
            t.above += est.ci_low > 0
    return tallies


def mde_decades(shifts: Sequence[float], power: Sequence[float], target: float = 0.8) -> float:
    """The smallest planted shift detected with ``target`` probability, straight lines between the simulated
    shifts (ascending); NaN when no simulated shift reaches it."""
    s, pw = np.asarray(shifts, dtype=float), np.asarray(power, dtype=float)
    for j in range(len(s)):
        if pw[j] >= target:
            if j == 0:
                return float(s[0])
            share = (target - pw[j - 1]) / (pw[j] - pw[j - 1])
            return float(s[j - 1] + share * (s[j] - s[j - 1]))
    return float("nan")


@dataclass(frozen=True)
class VarianceModel:
    """How the primary's interval scales with the design, for sizing a stage without running it: the seed component
    ``seed / S`` and the pair component ``(pair + run / S) / N`` (S seeds, N pairs read per run), combined into a t
    interval with the degrees of freedom :func:`prefstudy.evaluation.clustered.clustered` uses. Fitted by
    :func:`fit_variance` to simulated stages of several designs on one grid."""

    seed: float
    pair: float
    run: float

    def components(self, seeds: int, pairs: int) -> tuple[float, float]:
        return self.seed / seeds, (self.pair + self.run / seeds) / pairs

    def mde(self, seeds: int, pairs: int) -> float:
        """The MDE (80% power, two-sided 5%) a stage of this design reports, in the statistic's units."""
        from prefstudy.evaluation.clustered import satterthwaite_df, t_interval

        v_seed, v_pair = self.components(seeds, pairs)
        df = satterthwaite_df(v_seed, seeds, v_pair, pairs)
        if v_seed >= v_pair:
            df = float(seeds - 1)
        return t_interval(1.0, math.sqrt(v_seed + v_pair), df)[3]

    def size_for(self, target: float, seeds: int, pairs: int, max_seeds: int = 12,
                 max_pairs: int = 4096) -> dict[str, int | None]:
        """The fewest seeds (at ``pairs``) and the fewest pairs (at ``seeds``) whose MDE is at most ``target``; None
        where the limit is not enough."""
        by_seeds = next((s for s in range(max(seeds, 2), max_seeds + 1) if self.mde(s, pairs) <= target), None)
        by_pairs = next((n for n in range(64, max_pairs + 1, 64) if self.mde(seeds, n) <= target), None)
        return {"seeds_at_these_pairs": by_seeds, "pairs_at_these_seeds": by_pairs}


def fit_variance(rows: Sequence[tuple[int, int, float, float]]) -> VarianceModel:
    """A :class:`VarianceModel` from ``(seeds, pairs, mean seed component, mean pair component)`` of simulated
    designs: ``seed`` = the mean of seed component x S; ``pair`` and ``run`` by least squares of pair component x N
    on 1 / S (``run`` held at 0 when the designs share one S, or when the fit makes it negative)."""
    if not rows:
        raise ValueError("no simulated designs to fit")
    seeds = np.array([r[0] for r in rows], dtype=float)
    scaled_pair = np.array([r[3] * r[1] for r in rows], dtype=float)
    seed = float(np.mean([r[2] * r[0] for r in rows]))
    if len(set(seeds.tolist())) > 1:
        design = np.column_stack([np.ones_like(seeds), 1.0 / seeds])
        pair, run = (float(v) for v in np.linalg.lstsq(design, scaled_pair, rcond=None)[0])
        if run >= 0 and pair >= 0:
            return VarianceModel(seed, pair, run)
    return VarianceModel(seed, float(np.mean(scaled_pair)), 0.0)


MDE_FACTOR = 1.959964 + 0.841621  # z(0.975) + z(0.8): an MDE at 80% power is this many standard errors


def fit_mde(rows: Sequence[tuple[int, int, float]]) -> VarianceModel:
    """A :class:`VarianceModel` with no seed part from ``(seeds, pairs, MDE)`` of simulated designs, the MDE read
    off each design's power curve: ``(MDE / MDE_FACTOR)^2 x N = pair + run / S`` by least squares (``run`` held at
    0 when the designs share one S or the fit makes it negative; ``pair`` at 0, the line through the origin, when
    the fit makes that negative: only the pairs scored in all, S x N, count). For worlds whose seeds differ no more
    than their pairs explain (the stage's pilots): the projection then follows the power the simulation measured,
    not the interval's own components (which are conservative)."""
    usable = [r for r in rows if math.isfinite(r[2])]
    if not usable:
        raise ValueError("no simulated design reached 80% power")
    seeds = np.array([r[0] for r in usable], dtype=float)
    scaled = np.array([(r[2] / MDE_FACTOR) ** 2 * r[1] for r in usable], dtype=float)
    if len(set(seeds.tolist())) > 1:
        design = np.column_stack([np.ones_like(seeds), 1.0 / seeds])
        pair, run = (float(v) for v in np.linalg.lstsq(design, scaled, rcond=None)[0])
        if run >= 0 and pair >= 0:
            return VarianceModel(0.0, pair, run)
        if pair < 0 <= run:
            inverse = 1.0 / seeds
            return VarianceModel(0.0, 0.0, float(inverse @ scaled / (inverse @ inverse)))
    return VarianceModel(0.0, float(np.mean(scaled)), 0.0)
