"""The copy builder of preference determinism (training/preference_copies.py): exact proportions per instance, the
flipped copies' answers AND reference log-probs swapped, copies kept together by the sampler."""

from __future__ import annotations

import pytest
from datasets import Dataset

from prefstudy.training.preference_copies import CopyGroupSampler, expand, flipped_count


def _tokenized(n: int = 5) -> Dataset:
    return Dataset.from_list([{"id": f"p{i}", "prompt_ids": [1, 2], "chosen_ids": [10 + i] * (i + 1),
                               "rejected_ids": [50 + i] * 2, "ref_chosen_logps": -1.0 - i,
                               "ref_rejected_logps": -20.0 - i} for i in range(n)])


@pytest.mark.parametrize(("p", "copies", "flipped"), [(1.0, 4, 0), (0.75, 4, 1), (0.75, 8, 2), (0.625, 8, 3)])
def test_every_instance_gets_exactly_its_share_flipped(p: float, copies: int, flipped: int) -> None:
    data = _tokenized()
    out = expand(data, p, copies)
    assert len(out) == len(data) * copies and flipped_count(p, copies) == flipped
    for i in range(len(data)):
        rows = [r for r in out if r["instance"] == i]
        assert len(rows) == copies and sum(r["flipped"] for r in rows) == flipped
        for r in rows:
            original = data[i]
            if r["flipped"]:  # answers and their reference log-probs swapped together
                assert r["chosen_ids"] == original["rejected_ids"] and r["rejected_ids"] == original["chosen_ids"]
                assert r["ref_chosen_logps"] == original["ref_rejected_logps"]
                assert r["ref_rejected_logps"] == original["ref_chosen_logps"]
            else:
                assert r["chosen_ids"] == original["chosen_ids"]
                assert r["ref_chosen_logps"] == original["ref_chosen_logps"]
            assert r["id"] == original["id"] and r["prompt_ids"] == original["prompt_ids"]


def test_a_share_that_is_not_whole_copies_is_refused() -> None:
    with pytest.raises(ValueError, match="whole number"):
        flipped_count(0.75, 2)  # half a copy
    with pytest.raises(ValueError, match=r"\(0.5, 1\]"):
        flipped_count(0.5, 4)  # no preferred answer


def test_the_sampler_keeps_copies_together_and_reshuffles_per_epoch() -> None:
    sampler = CopyGroupSampler(rows=20, copies=4, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(20))
    groups = [first[k:k + 4] for k in range(0, 20, 4)]
    assert all(g == list(range(g[0], g[0] + 4)) and g[0] % 4 == 0 for g in groups)
    assert list(CopyGroupSampler(20, 4, 3)) == first  # seeded
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(list(sampler)) == list(range(20))
    with pytest.raises(ValueError):
        CopyGroupSampler(rows=10, copies=4, seed=0)
