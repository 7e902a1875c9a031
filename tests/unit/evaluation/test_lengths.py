"""Length diagnostics worked out by hand: shares, quantiles, and summed vs per-token accuracy by length ratio."""

from __future__ import annotations

import pytest

from prefstudy.evaluation import lengths


def test_summary_by_hand() -> None:
    out = lengths.summary([10, 20, 30, 5], [5, 20, 10, 10])
    assert out["pairs"] == 4 and out["chosen_longer"] == 0.5 and out["equal"] == 0.25
    assert out["chosen_tokens"][1] == pytest.approx(15.0)  # median of 5, 10, 20, 30
    with pytest.raises(ValueError, match="matching"):
        lengths.summary([1, 2], [1])


def test_strata_by_hand() -> None:
    # pair 1: chosen 30 tokens at -30 (per token -1.0), rejected 10 at -15 (-1.5): summed loses, per token wins
    # pair 2: chosen 10 at -10 (-1.0), rejected 10 at -20 (-2.0): both win (similar lengths)
    # pair 3: chosen 5 at -10 (-2.0), rejected 20 at -20 (-1.0): summed wins, per token loses (chosen shorter)
    rows = lengths.strata([-30, -10, -10], [-15, -20, -20], [30, 10, 5], [10, 10, 20])
    by = {r["stratum"]: r for r in rows}
    assert by["chosen longer (> 1.5x)"] == {"stratum": "chosen longer (> 1.5x)", "pairs": 1, "summed": 0.0,
                                           "per_token": 1.0}
    assert by["similar (0.67-1.5x)"]["summed"] == 1.0 and by["similar (0.67-1.5x)"]["per_token"] == 1.0
    assert by["chosen shorter (< 0.67x)"]["summed"] == 1.0 and by["chosen shorter (< 0.67x)"]["per_token"] == 0.0
    assert by["all"]["pairs"] == 3 and by["all"]["summed"] == pytest.approx(2 / 3)
    assert lengths.strata([-1], [-1], [4], [4])[0]["summed"] == 0.5  # a tie counts a half
