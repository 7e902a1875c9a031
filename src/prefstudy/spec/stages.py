"""The fixed-design stages' spec sections: ``drift`` (claim (a)) and ``lr_profile`` (claim (b)); docs/claims.md."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field, field_validator, model_validator

from prefstudy.spec.base import _Frozen

STAGES = ("drift", "lr-profile")  # the fixed-design stages (--stage NAME): search.stages runs them
ROLES = ("search", "confirm", *STAGES)  # every stage, in the order it runs (search.registry): --role of a worker


@dataclass(frozen=True)
class Request:
    """What the command line asks of the stages (``search.registry``): ``--confirm``, ``--stage NAME``, and
    ``--role NAME`` for a worker process started by ``--workers`` (it runs that one stage's queued trials only)."""

    confirm: bool = False
    stage: str | None = None
    role: str | None = None


class DriftSpec(_Frozen):
    """The ``drift`` stage (claim (a)): a beta grid per method at one learning rate, long runs, several seeds."""

    learning_rate: float | None = Field(None, gt=0)  # None: geometric mean of the methods' best search trials' lr
    betas: dict[str, tuple[float, ...]] = {}  # per method; a method left out gets grid_points across its beta range
    grid_points: int = Field(3, ge=3)  # betas per method when not listed, log-spaced from the range's low to high
    steps_factor: float = Field(3.0, ge=3.0)  # a run lasts this many times a search trial's optimizer steps
    eval_points: int = Field(6, ge=5)  # scored points after step 0, evenly spaced (step 0 comes from the cache)
    seeds: tuple[int, ...] = (1, 2)  # training seeds per design point (>= 2: the interval carries seed variance)
    val_pairs: int | None = Field(None, ge=2)  # the fixed val pairs scored at every point (None: val_subset)
    generation_pairs: int = Field(32, ge=0)  # val prompts answered at every point (0: no generation accuracy)
    flat_margin: float = Field(0.5, gt=0)  # TOST margin: DPO's log-log slope counts as flat inside +-this
    n_boot: int = Field(1000, ge=100)  # pair bootstrap resamples of the clustered intervals
    # preference determinism (training/preference_copies.py): every p trains on `copies` rows per instance, a share
    # 1 - p of them flipped; (1 - p) * copies must be whole. (1.0,) with 1 copy: the training split as it is
    preference_p: tuple[float, ...] = (1.0,)
    copies: int = Field(1, ge=1)  # rows per training instance (the same for every p: same size, same data order)
    copies_together: bool = True  # with copies > 1, an instance's copies share one batch (its exact mean gradient)
    # the learning rate falls linearly to 0 over this share of each run's last steps (0: the training section's
    # scheduler): the last eval points then read where the optimiser settles, not its noise (pilot, docs/claims.md)
    lr_decay: float = Field(0.5, ge=0, lt=1)
    # the rules on the training instances (evaluation.fixed_points): late growth over the last `late_points` eval
    # points, bounded within +-growth_margin (units of the closed form), at the closed form within x/÷ level_margin
    late_points: int = Field(3, ge=3)
    growth_margin: float = Field(0.1, gt=0)
    level_margin: float = Field(1.25, gt=1)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) < 2 or len(set(value)) != len(value) or any(s < 0 for s in value):
            raise ValueError("drift.seeds needs at least 2 distinct non-negative integers (seed variance)")
        return value

    @model_validator(mode="after")
    def _determinism(self) -> DriftSpec:
        ps = self.preference_p
        if not ps or len(set(ps)) != len(ps) or any(not 0.5 < p <= 1.0 for p in ps):
            raise ValueError(f"drift.preference_p {list(ps)}: distinct values in (0.5, 1] (the preferred answer wins "
                             "more often)")
        for p in ps:
            flipped = (1.0 - p) * self.copies
            if abs(flipped - round(flipped)) > 1e-9:
                raise ValueError(f"drift.preference_p {p} with drift.copies {self.copies}: (1 - p) * copies = "
                                 f"{flipped:g} is not a whole number of flipped copies (e.g. copies 4 for p 0.75)")
        if all(p == 1.0 for p in ps):  # only the held-out slope across beta reads the stage: it needs 3 betas
            for method, betas in self.betas.items():
                if len(betas) < 3:
                    raise ValueError(f"drift.betas.{method}: at least 3 distinct values (the held-out slope across "
                                     "beta needs them), unless drift.preference_p has a value below 1 (the rules on "
                                     "the training preferences compare p at each beta)")
        return self

    @field_validator("betas")
    @classmethod
    def _grid(cls, value: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
        for method, betas in value.items():
            if not betas or len(set(betas)) != len(betas) or any(b <= 0 for b in betas):
                raise ValueError(f"drift.betas.{method}: distinct positive values")
        return value


class LrProfileSpec(_Frozen):
    """The ``lr-profile`` stage (claim (b)): val/test accuracy against a learning-rate grid per method, at the tuned
    beta (several seeds) and with beta re-tuned at the highest learning rates (one seed, chosen on val)."""

    learning_rates: tuple[float, ...] = ()  # explicit grid; empty: grid_points log-spaced across the extended range
    grid_points: int = Field(6, ge=4)  # learning rates when not listed (>= 4: the primary aligns on >= 3 of them)
    extend: tuple[float, float] = (2.0, 4.0)  # the grid runs from learning_rate.low / extend[0] to high * extend[1]
    betas: dict[str, float] = {}  # per method; left out: the beta of the method's best search trial
    seeds: tuple[int, ...] = (1, 2)  # training seeds at the tuned beta (>= 2: the interval carries seed variance)
    retune_points: int = Field(0, ge=0)  # beta is re-tuned at this many of the highest learning rates (0: never)
    retune_factor: float = Field(3.0, gt=1.0)  # candidates: tuned beta * and / this (clipped to the method's range)
    delta: float = Field(0.05, gt=0, lt=1)  # degraded: val accuracy more than delta below the method's val peak
    test_pairs: int | None = Field(None, ge=2)  # test pairs every run scores, the primary's (None: all of test)
    profile_pairs: int | None = Field(None, ge=0)  # the first this many profile-split pairs, read with test (None:
    # all of data.synthetic.n_profile; 0: test alone): fewer read pairs buy more seeds where seeds differ most
    n_boot: int = Field(1000, ge=100)  # pair bootstrap resamples of the clustered intervals

    def profile_pairs_of(self, available: int) -> int:
        """Profile-split pairs every run reads, of ``available``: the first ``profile_pairs`` (None: all)."""
        return available if self.profile_pairs is None else min(self.profile_pairs, available)

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(value) < 2 or len(set(value)) != len(value) or any(s < 0 for s in value):
            raise ValueError("lr_profile.seeds needs at least 2 distinct non-negative integers (seed variance)")
        return value

    @field_validator("learning_rates")
    @classmethod
    def _grid(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if value and (len(value) < 4 or len(set(value)) != len(value) or any(v <= 0 for v in value)):
            raise ValueError("lr_profile.learning_rates: at least 4 distinct positive values (the primary aligns the "
                             "profiles on >= 3 of them), or empty for the grid")
        return tuple(sorted(value))

    @field_validator("betas")
    @classmethod
    def _betas(cls, value: dict[str, float]) -> dict[str, float]:
        for method, beta in value.items():
            if beta <= 0:
                raise ValueError(f"lr_profile.betas.{method}: beta must be > 0")
        return value

    @model_validator(mode="after")
    def _extend(self) -> LrProfileSpec:
        if min(self.extend) < 1.0:
            raise ValueError("lr_profile.extend: both factors >= 1 (the grid reaches past the search range)")
        if self.retune_points >= max(self.grid_points, len(self.learning_rates)):
            raise ValueError("lr_profile.retune_points must be fewer than the grid's learning rates")
        return self
