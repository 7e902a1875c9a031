"""What sizes the lr-profile stage before it runs (``--dry-run --stage lr-profile``): the variance model of claim
(b)'s primary (the alignment shift, :mod:`prefstudy.evaluation.profile_shift`) fitted to the plasmode simulation of
the 2026-12-06 pilot, and the MDE targets the dry run solves for.

The pilot: the default study's lr-profile stage on data seed 0 with training seeds 101-103 (never used for a
verdict), 6 learning rates (3.81e-4 ... 8e-3), 128 val + 64 test pairs per run. ``python -m benchmarks.profile_power``
resampled its DPO runs' per-pair wins (192 pairs) and planted shifts of 0-0.44 decades; with the primary's crossed
interval (``clustered.crossed``, the amendment of 2026-12-06) in 200 simulated stages per design (200 bootstrap
resamples each) on the 4-point grid (3.81e-4, 1.05e-3, 2.9e-3, 8e-3) at 3, 5, 6 and 10 seeds x 384 pairs, the
interval's seed part follows ``seed / S`` and its pair part ``(pair + run / S) / N`` with the values below
(docs/claims.md; docs/results/profile-power-crossed-2026-12-06.json, every number). The MDE they project matches the
power curve's: 0.405 / 0.314 / 0.288 / 0.230 decades against 0.415 / 0.315 / 0.281 / 0.230. They hold for that
grid's shape on this model and data only, with beta at its tuned value at every point: the verdict run of
2026-12-06 (docs/results/claims.md) read single-seed re-tuning candidates at its highest rates and a shallower
decline, and reached 0.49. Another model or grid needs its own pilot and run of the benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass

from prefstudy.evaluation.profile_power import VarianceModel


@dataclass(frozen=True)
class Pilot:
    model: VarianceModel
    grid: tuple[float, ...]  # the learning rates the model was simulated on
    source: str


PILOT = Pilot(VarianceModel(seed=0.01442, pair=0.3974, run=15.92), (3.81e-4, 1.05e-3, 2.9e-3, 8e-3),
              "variance model of the 2026-12-06 pilot's simulation with the crossed interval, docs/claims.md")
TARGETS = (0.35, 0.25)  # decades: issue #32's target for the default spec, and the size the docs state for 0.25


def matches_pilot_grid(learning_rates: tuple[float, ...], tolerance: float = 0.05) -> bool:
    """Whether a grid is the pilot's (each rate within ``tolerance``, relative): the projection is only its."""
    return len(learning_rates) == len(PILOT.grid) and all(
        abs(a / b - 1.0) <= tolerance for a, b in zip(sorted(learning_rates), PILOT.grid, strict=True))
