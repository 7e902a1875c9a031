"""What each comparison's interval resamples, in words: test pairs for the held-out difference, lm-eval documents
(never test pairs) for the lm-eval difference."""

from __future__ import annotations

import numpy as np

from prefstudy.report.compare import Comparison, MethodRuns


def _runs(method: str, source: str) -> MethodRuns:
    return MethodRuns(method, source, 0, {}, [1, 2, 3], 0.6, np.zeros((3, 384)), [], np.zeros((3, 320)), [])


def test_the_lm_eval_difference_names_documents_and_the_heldout_one_pairs() -> None:
    confirm = Comparison(_runs("dpo", "confirm"), _runs("ipo", "confirm"), 3, 384, (0.0, -0.1, 0.1),
                         (0.0, -0.1, 0.1), lm_seeds=2, lm_docs=320)
    assert confirm.scope() == "3 confirmation seed(s) per method x 384 test pairs"
    assert confirm.lm_scope() == "2 confirmation seed(s) per method x 320 lm-eval documents"
    search = Comparison(_runs("dpo", "search"), _runs("ipo", "search"), 1, 384, (0.0, -0.1, 0.1),
                        (0.0, -0.1, 0.1), lm_seeds=1, lm_docs=320)
    assert search.lm_scope() == "one seed (the search trials) x 320 lm-eval documents"
    assert "test pairs" not in search.lm_scope()
