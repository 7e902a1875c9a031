"""The bench's positionals: a spec path, then key=value overrides; an override first means the bench spec."""

from __future__ import annotations

from benchmarks.bench import BENCH_SPEC, spec_and_overrides


def test_an_override_first_is_an_override_of_the_bench_spec() -> None:
    assert spec_and_overrides("training.precision=bf16", []) == (BENCH_SPEC, ["training.precision=bf16"])
    assert spec_and_overrides("a.b=1", ["c=2"]) == (BENCH_SPEC, ["a.b=1", "c=2"])
    assert spec_and_overrides("study/smoke.yaml", ["c=2"]) == ("study/smoke.yaml", ["c=2"])
    assert spec_and_overrides(BENCH_SPEC, []) == (BENCH_SPEC, [])
