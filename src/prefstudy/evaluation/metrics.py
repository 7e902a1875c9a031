"""Preference-optimization metrics and bootstrap confidence intervals.

Pure functions over numbers (numpy arrays); no torch, no models.

Notation, for a preference pair (x, y_w, y_l):

* ``logp(y|x)`` is the SUM of log-probabilities over the completion tokens of y.
* ``r(y) = logp_policy(y|x) - logp_ref(y|x)`` is the implicit reward in nats,
  NOT scaled by beta (so values are comparable across beta settings).

All array inputs are validated: mismatched shapes, empty arrays and NaN values
raise ``ValueError``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "bootstrap_mean_ci",
    "chosen_log_ratio",
    "clustered_paired_bootstrap_diff",
    "excludes_zero",
    "implicit_reward_accuracy",
    "kl_proxy",
    "pairwise_preference",
    "paired_bootstrap_diff",
    "per_token_preference_accuracy",
    "preference_accuracy",
    "preference_summary",
    "reward_margin",
    "stratified_se",
]

# Upper bound on elements of one bootstrap block (keeps memory ~32 MB).
_BLOCK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------- validation
def _as_array(x: ArrayLike, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    return arr


def _vectors(ndim: int = 1, **named: ArrayLike) -> list[np.ndarray]:
    """Validate several same-shaped arrays; return them in argument order."""
    arrays = [_as_array(v, k, ndim) for k, v in named.items()]
    shapes = {k: a.shape for k, a in zip(named, arrays, strict=True)}
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shape mismatch: {shapes}")
    return arrays


def _check_boot_args(n_boot: int, confidence: float) -> None:
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _percentile_interval(stats: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = 1.0 - confidence
    lo, hi = np.quantile(stats, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(lo), float(hi)


def _compare(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


# --------------------------------------------------------------------------- ranking metrics
def pairwise_preference(chosen_logps: ArrayLike, rejected_logps: ArrayLike) -> np.ndarray:
    """Per-pair verdict of the policy's own ranking.

    ``p_i = 1`` if ``logp(y_w_i) > logp(y_l_i)``, ``0.5`` if equal, ``0`` otherwise.
    """
    chosen, rejected = _vectors(chosen_logps=chosen_logps, rejected_logps=rejected_logps)
    return _compare(chosen, rejected)


def preference_accuracy(chosen_logps: ArrayLike, rejected_logps: ArrayLike) -> float:
    """Mean of :func:`pairwise_preference`: how often the POLICY itself ranks
    the chosen answer above the rejected one (ties count 0.5).

    Independent of beta and of the reference model.
    """
    return float(pairwise_preference(chosen_logps, rejected_logps).mean())


def per_token_preference_accuracy(
    chosen_logps: ArrayLike,
    rejected_logps: ArrayLike,
    chosen_tokens: ArrayLike,
    rejected_tokens: ArrayLike,
) -> float:
    """Preference accuracy on length-normalised log-probs.

    ``mean_i cmp(logp(y_w_i)/|y_w_i|, logp(y_l_i)/|y_l_i|)`` with ``cmp`` as in
    :func:`pairwise_preference`; ``|y|`` is the number of completion tokens
    (must be > 0). Useful when chosen and rejected answers differ in length.
    """
    chosen, rejected, n_w, n_l = _vectors(
        chosen_logps=chosen_logps,
        rejected_logps=rejected_logps,
        chosen_tokens=chosen_tokens,
        rejected_tokens=rejected_tokens,
    )
    if (n_w <= 0).any() or (n_l <= 0).any():
        raise ValueError("token counts must be positive")
    return float(_compare(chosen / n_w, rejected / n_l).mean())


# --------------------------------------------------------------------------- implicit reward
def _rewards(
    policy_chosen: ArrayLike,
    policy_rejected: ArrayLike,
    ref_chosen: ArrayLike,
    ref_rejected: ArrayLike,
) -> tuple[np.ndarray, np.ndarray]:
    pc, pr, rc, rr = _vectors(
        policy_chosen=policy_chosen,
        policy_rejected=policy_rejected,
        ref_chosen=ref_chosen,
        ref_rejected=ref_rejected,
    )
    return pc - rc, pr - rr


def implicit_reward_accuracy(
    policy_chosen: ArrayLike,
    policy_rejected: ArrayLike,
    ref_chosen: ArrayLike,
    ref_rejected: ArrayLike,
) -> float:
    """``mean_i 1[r(y_w_i) > r(y_l_i)]`` with ties counted 0.5, where
    ``r(y) = logp_policy(y) - logp_ref(y)`` (the DPO/IPO implicit reward)."""
    r_w, r_l = _rewards(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return float(_compare(r_w, r_l).mean())


def reward_margin(
    policy_chosen: ArrayLike,
    policy_rejected: ArrayLike,
    ref_chosen: ArrayLike,
    ref_rejected: ArrayLike,
) -> float:
    """``mean_i [r(y_w_i) - r(y_l_i)]`` in nats, NOT scaled by beta."""
    r_w, r_l = _rewards(policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return float((r_w - r_l).mean())


def chosen_log_ratio(policy_chosen: ArrayLike, ref_chosen: ArrayLike) -> float:
    """``mean_i r(y_w_i) = mean_i [logp_policy(y_w_i) - logp_ref(y_w_i)]``.

    Negative values mean the policy made the chosen answers LESS likely than
    the reference did (likelihood displacement).
    """
    pc, rc = _vectors(policy_chosen=policy_chosen, ref_chosen=ref_chosen)
    return float((pc - rc).mean())


def kl_proxy(policy_token_logps: ArrayLike, ref_token_logps: ArrayLike, mask: ArrayLike) -> float:
    """Second-order PROXY of the KL divergence to the reference.

    Inputs are per-token log-probs of the chosen answers, shape ``[pairs, tokens]``,
    and a 0/1 ``mask`` of the same shape (1 = completion token). Returns

        ``sum(mask * 0.5 * (logp_policy - logp_ref)**2) / sum(mask)``

    This is not the true KL (which needs the full next-token distributions); it
    is the ``k2`` estimator ``0.5 * log(p/q)**2`` evaluated on the data's own
    tokens rather than on policy samples. It is >= 0 and equals 0 iff the policy
    assigns the same log-prob as the reference on every masked token. Values at
    masked-out (padding) positions are ignored, including NaN there.
    """
    m = np.asarray(mask, dtype=np.float64)
    pol = np.asarray(policy_token_logps, dtype=np.float64)
    ref = np.asarray(ref_token_logps, dtype=np.float64)
    for name, arr in (("policy_token_logps", pol), ("ref_token_logps", ref), ("mask", m)):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D [pairs, tokens], got shape {arr.shape}")
        if arr.size == 0:
            raise ValueError(f"{name} is empty")
    if not pol.shape == ref.shape == m.shape:
        raise ValueError(f"shape mismatch: policy {pol.shape}, ref {ref.shape}, mask {m.shape}")
    if not np.isin(m, (0.0, 1.0)).all():
        raise ValueError("mask must contain only 0 and 1")
    keep = m == 1.0
    if not keep.any():
        raise ValueError("mask selects no tokens")
    diff = pol[keep] - ref[keep]
    if np.isnan(diff).any():
        raise ValueError("token log-probs contain NaN at masked positions")
    return float(np.mean(0.5 * diff**2))


def preference_summary(
    policy_chosen: ArrayLike,
    policy_rejected: ArrayLike,
    ref_chosen: ArrayLike,
    ref_rejected: ArrayLike,
    chosen_tokens: ArrayLike,
    rejected_tokens: ArrayLike,
) -> dict[str, float]:
    """All pair-level metrics at once.

    Keys: ``accuracy`` (policy's own ranking), ``accuracy_per_token``,
    ``implicit_accuracy``, ``margin`` (mean r(y_w) - r(y_l)), ``chosen_log_ratio``
    (mean r(y_w)), ``rejected_log_ratio`` (mean r(y_l)), ``n`` (number of pairs).
    """
    pc, pr, rc, rr, n_w, n_l = _vectors(
        policy_chosen=policy_chosen,
        policy_rejected=policy_rejected,
        ref_chosen=ref_chosen,
        ref_rejected=ref_rejected,
        chosen_tokens=chosen_tokens,
        rejected_tokens=rejected_tokens,
    )
    return {
        "accuracy": preference_accuracy(pc, pr),
        "accuracy_per_token": per_token_preference_accuracy(pc, pr, n_w, n_l),
        "implicit_accuracy": implicit_reward_accuracy(pc, pr, rc, rr),
        "margin": reward_margin(pc, pr, rc, rr),
        "chosen_log_ratio": float((pc - rc).mean()),
        "rejected_log_ratio": float((pr - rr).mean()),
        "n": float(pc.size),
    }


# --------------------------------------------------------------------------- bootstrap
def bootstrap_mean_ci(
    values: ArrayLike, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0,
    strata: Sequence[int] | None = None,
) -> tuple[float, float, float]:
    """Percentile bootstrap CI for the mean of ``values`` (items resampled
    with replacement). Returns ``(mean, lo, hi)``.

    ``lo``/``hi`` are the ``(1-c)/2`` and ``(1+c)/2`` quantiles of ``n_boot``
    resampled means. Deterministic for a given ``seed`` (numpy ``default_rng``).
    ``strata``: sizes of consecutive blocks of ``values`` (e.g. the documents of
    each lm-eval task); items are then resampled within their block, so every
    block keeps its size -- the design of a fixed set of tasks, each a sample of
    documents. Without it the whole vector is one block.
    """
    _check_boot_args(n_boot, confidence)
    v = _as_array(values, "values", 1)
    n = v.size
    sizes = _strata(strata, n)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // n)
    stats = np.empty(n_boot)
    for start in range(0, n_boot, block):
        rows = min(start + block, n_boot) - start
        stats[start : start + rows] = _resample_counts(rng, rows, sizes) @ v / n
    lo, hi = _percentile_interval(stats, confidence)
    return float(v.mean()), lo, hi


def stratified_se(values: ArrayLike, strata: Sequence[int] | None = None) -> float:
    """Standard error of the mean of ``values`` when items are sampled within
    ``strata`` (sizes of consecutive blocks): ``sqrt(sum_t n_t var_t) / n`` with
    ``var_t`` the sample variance (ddof=1) of block t. One block: ``sd / sqrt(n)``.
    Blocks of one item contribute no variance (none can be estimated)."""
    v = _as_array(values, "values", 1)
    total, start = 0.0, 0
    for size in _strata(strata, v.size):
        block = v[start : start + size]
        start += size
        if size > 1:
            total += size * float(block.var(ddof=1))
    return float(np.sqrt(total) / v.size)


def _strata(strata: Sequence[int] | None, n: int) -> list[int]:
    sizes = [n] if strata is None else [int(k) for k in strata]
    if any(k < 1 for k in sizes) or sum(sizes) != n:
        raise ValueError(f"strata sizes {sizes} must be positive and sum to the {n} values")
    return sizes


def paired_bootstrap_diff(
    a: ArrayLike, b: ArrayLike, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float, float]:
    """Paired bootstrap CI for ``mean_i (a_i - b_i)`` where ``a_i`` and ``b_i``
    are scores of two systems on the SAME item i. Returns ``(mean_diff, lo, hi)``;
    identical to :func:`bootstrap_mean_ci` on the differences."""
    a_arr, b_arr = _vectors(a=a, b=b)
    return bootstrap_mean_ci(a_arr - b_arr, n_boot=n_boot, confidence=confidence, seed=seed)


def _resample_counts(rng: np.random.Generator, rows: int, n: int | Sequence[int]) -> np.ndarray:
    """``[rows, N]`` multiplicities of a draw with replacement, per row. ``n`` an int: one size-n draw over all
    N = n items; a list of block sizes: an independent draw of each block's size within each block."""
    sizes = [n] if isinstance(n, (int, np.integer)) else list(n)
    parts = []
    for size in sizes:
        idx = rng.integers(0, size, size=(rows, size)) + (np.arange(rows) * size)[:, None]
        parts.append(np.bincount(idx.ravel(), minlength=rows * size).reshape(rows, size))
    return np.concatenate(parts, axis=1).astype(np.float64)


def clustered_paired_bootstrap_diff(
    a: ArrayLike, b: ArrayLike, n_boot: int = 2000, confidence: float = 0.95, seed: int = 0,
    strata: Sequence[int] | None = None,
) -> tuple[float, float, float]:
    """Two-level paired bootstrap for ``a``, ``b`` of shape ``[seeds, items]``.

    ``d[s, i] = a[s, i] - b[s, i]``. Each replicate draws S seeds AND I items
    with replacement (independently) and takes the mean of ``d`` over the
    resampled seed x item grid, i.e. ``c^T d w / (S * I)`` with multiplicity
    vectors ``c`` (seeds) and ``w`` (items). This accounts for both training-seed
    variance and test-item variance. Returns ``(mean diff, lo, hi)``
    (percentile interval). With one seed it reduces to an item bootstrap.
    ``strata``: item block sizes, resampled within blocks (see :func:`bootstrap_mean_ci`).
    """
    _check_boot_args(n_boot, confidence)
    a_arr, b_arr = _vectors(2, a=a, b=b)
    d = a_arr - b_arr
    s, n_items = d.shape
    sizes = _strata(strata, n_items)
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_ELEMENTS // (s + n_items))
    stats = np.empty(n_boot)
    for start in range(0, n_boot, block):
        rows = min(start + block, n_boot) - start
        c = _resample_counts(rng, rows, s)
        w = _resample_counts(rng, rows, sizes)
        stats[start : start + rows] = np.einsum("bi,bi->b", c @ d, w) / (s * n_items)
    lo, hi = _percentile_interval(stats, confidence)
    return float(d.mean()), lo, hi


def excludes_zero(lo: float, hi: float) -> bool:
    """True iff the interval ``[lo, hi]`` does not contain 0 (``lo > 0`` or ``hi < 0``)."""
    if np.isnan(lo) or np.isnan(hi):
        raise ValueError("interval bounds contain NaN")
    if lo > hi:
        raise ValueError(f"lo ({lo}) > hi ({hi})")
    return bool(lo > 0.0 or hi < 0.0)
