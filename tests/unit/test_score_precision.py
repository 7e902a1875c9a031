"""evaluation.precision: held-out scoring in the scoring precision, the dry run's costs, and preflight's note where
a CPU has no native bf16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from support import ROOT

from prefstudy.data.sources import load_splits
from prefstudy.evaluation.heldout import score_splits
from prefstudy.evaluation.logprobs import sequence_logps
from prefstudy.plan_costs import BF16_SCORE_SPEEDUP, CPU_COSTS, costs_for
from prefstudy.preflight import bf16_cpu_note, cpu_flags
from prefstudy.spec import DataSpec, SyntheticData, TrainingSpec, load_spec
from prefstudy.training.refcache import model_identity, prepare

SMOKE = ROOT / "study" / "smoke.yaml"


def test_held_out_scoring_runs_in_the_scoring_precision(tiny, tmp_path: Path) -> None:
    tokenizer, model = tiny
    splits = load_splits(DataSpec(synthetic=SyntheticData(n_train=4, n_val=4, n_test=2, n_ood=0))).splits
    prepared = prepare(tmp_path, model, tokenizer, splits, TrainingSpec(max_length=256),
                       model_identity("tiny-random-mistral", None), 4, log=lambda _m: None, score_precision="bf16")
    out = {}
    for precision in ("fp32", "bf16"):
        spec = load_spec(SMOKE, [f"evaluation.precision={precision}", "training.max_length=256",
                                 "evaluation.batch_size=4"])
        out[precision] = score_splits(model, spec, tokenizer.pad_token_id, prepared, ["val"])[1]["val"]["chosen"]
    dataset = prepared.tokenized["val"]
    for precision, got in out.items():
        assert np.array_equal(got, sequence_logps(model, dataset, tokenizer.pad_token_id, 4, precision, 256)["chosen"])
    assert not np.array_equal(out["fp32"], out["bf16"])


def test_dry_run_costs_divide_scoring_alone_by_the_measured_bf16_speedup() -> None:
    fp32, bf16 = costs_for(load_spec(SMOKE)), costs_for(load_spec(SMOKE, ["evaluation.precision=bf16"]))
    assert fp32 == CPU_COSTS
    assert bf16.score_per_pair == CPU_COSTS.score_per_pair / BF16_SCORE_SPEEDUP
    assert bf16.ref_per_pair == CPU_COSTS.ref_per_pair / BF16_SCORE_SPEEDUP
    assert (bf16.train_per_pair_step, bf16.lm_eval_per_doc, bf16.load) == (
        CPU_COSTS.train_per_pair_step, CPU_COSTS.lm_eval_per_doc, CPU_COSTS.load)
    # bf16 training too: no measured speed-up for it here, so the costs stay the reference's
    assert costs_for(load_spec(SMOKE, ["training.precision=bf16"])) == CPU_COSTS


def test_preflight_notes_bf16_on_a_cpu_without_native_bf16(tmp_path: Path) -> None:
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert cpu_flags(str(info)) == {"fpu", "sse", "avx2", "avx512f"}
    assert cpu_flags(str(tmp_path / "missing")) is None
    bf16, fp32 = load_spec(SMOKE, ["evaluation.precision=bf16"]), load_spec(SMOKE)
    note = bf16_cpu_note(bf16, {"avx2", "avx512f"})
    assert note is not None and "evaluation.precision=fp32" in note
    assert bf16_cpu_note(bf16, {"avx512f", "avx512_bf16"}) is None
    assert bf16_cpu_note(bf16, {"amx_bf16"}) is None
    assert bf16_cpu_note(fp32, {"avx2"}) is None
    assert bf16_cpu_note(bf16, None) is None
    assert bf16_cpu_note(load_spec(SMOKE, ["training.precision=bf16"]), {"avx2"}) is not None
