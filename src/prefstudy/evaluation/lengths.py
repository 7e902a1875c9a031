"""How much of a preference accuracy is answer length? Diagnostics for data whose chosen and rejected answers differ
in length (numpy only).

A model's own ranking of a pair by summed log-probability favours the shorter answer whatever it says (every token
costs log-probability); ranked per token, length cancels. On data where the chosen answer is usually longer, a
summed accuracy far from the per-token one, or one that moves with the length ratio, is length, not preference.
DPO, which reads summed log-ratios, is known to exploit length (Park et al. 2024).

* :func:`summary`: per split, the share of pairs whose chosen answer is longer (and equal), and the token-length
  quantiles of chosen and rejected answers (as trained: cut answers count their kept tokens).
* :func:`strata`: pairs grouped by the ratio chosen / rejected tokens (``STRATA``), and per group the accuracy of a
  model's summed and per-token ranking side by side (ties count ½).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: length-ratio groups (chosen tokens / rejected tokens): bounds and labels
STRATA = ((0.0, 2 / 3, "chosen shorter (< 0.67x)"), (2 / 3, 1.5, "similar (0.67-1.5x)"),
          (1.5, float("inf"), "chosen longer (> 1.5x)"))


def _wins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(a > b, 1.0, np.where(a < b, 0.0, 0.5))


def summary(chosen_tokens: Any, rejected_tokens: Any) -> dict[str, Any]:
    """Share of pairs whose chosen answer is longer / as long, and quantiles (10, 50, 90%) of both lengths."""
    c, r = np.asarray(chosen_tokens, dtype=float), np.asarray(rejected_tokens, dtype=float)
    if len(c) != len(r) or not len(c):
        raise ValueError(f"need matching non-empty token counts, got {len(c)} and {len(r)}")
    q = (10, 50, 90)
    return {"pairs": int(len(c)), "chosen_longer": float(np.mean(c > r)), "equal": float(np.mean(c == r)),
            "chosen_tokens": [float(v) for v in np.percentile(c, q)],
            "rejected_tokens": [float(v) for v in np.percentile(r, q)]}


def strata(chosen_logps: Any, rejected_logps: Any, chosen_tokens: Any, rejected_tokens: Any) -> list[dict[str, Any]]:
    """Per length-ratio group (``STRATA``, empty groups left out): pairs, and the accuracy of the summed and of the
    per-token ranking of the same log-probabilities."""
    lc, lr = np.asarray(chosen_logps, dtype=float), np.asarray(rejected_logps, dtype=float)
    c, r = np.asarray(chosen_tokens, dtype=float), np.asarray(rejected_tokens, dtype=float)
    if not len(lc) == len(lr) == len(c) == len(r):
        raise ValueError("log-probs and token counts must have one value per pair")
    ratio = c / np.maximum(r, 1.0)
    summed, per_token = _wins(lc, lr), _wins(lc / np.maximum(c, 1.0), lr / np.maximum(r, 1.0))
    out = []
    for low, high, label in STRATA:
        inside = (ratio >= low) & (ratio < high)
        if inside.any():
            out.append({"stratum": label, "pairs": int(inside.sum()), "summed": float(summed[inside].mean()),
                        "per_token": float(per_token[inside].mean())})
    out.append({"stratum": "all", "pairs": int(len(c)), "summed": float(summed.mean()),
                "per_token": float(per_token.mean())})
    return out
