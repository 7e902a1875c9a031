"""The claims section's figures as PNG files (kaleido, headless Chromium), for a results page.

    python -m benchmarks.claims_figures [SPEC] [--storage URL] --out docs/results [--prefix claims-]

Reads the drift and lr-profile stages' runs from the storage and run directories (as the report does), writes
``<out>/claims-<figure>.png`` and copies ``reports/<name>/claims.json`` (built by the report, with the
Holm-adjusted secondary p-values) to ``<out>/claims.json``. Kaleido needs a Chromium: it finds Debian's
``/usr/bin/chromium`` (``BROWSER_PATH`` names another).
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from benchmarks import study_tool


def main(argv: list[str] | None = None) -> int:
    parser = study_tool.parser("claims_figures", __doc__)
    parser.add_argument("--prefix", default="claims-", help="file names start with this (e.g. a dated one, so an "
                        "earlier results section keeps its figures)")
    args = parser.parse_args(argv)
    from prefstudy.report import claims
    from prefstudy.report import figures_claims as fc

    spec, url, storage = study_tool.open_study(args)
    entries, runs, profile, train = claims.build(spec, storage)
    if not runs and not profile:
        print(f"error: no drift or lr-profile runs in {url}: nox -s study -- --stage drift (or lr-profile)",
              file=sys.stderr)
        return 2
    for browser in ("/usr/bin/chromium", "/usr/bin/chromium-browser"):
        if "BROWSER_PATH" not in os.environ and Path(browser).exists():
            os.environ["BROWSER_PATH"] = browser
    from prefstudy.report import figures_lr

    figures = {} if not runs else {
        "margin": fc.per_step(runs, "margin_per_token", "Per-token margin per step (dashed: IPO's target 1/(2β))",
                              "r(y_w)/|y_w| − r(y_l)/|y_l| (nats/token)", targets=True),
        "drift": fc.drift_vs_beta(runs),
        "val": fc.per_step(runs, "wins", "Val preference accuracy per step", "preference accuracy"),
    }
    if train:
        figures["train-margin"] = fc.train_margins(train)
    if profile:
        lr_entry = next((e for e in entries if e["id"] == "lr_tolerance"), None)
        figures["lr-profile"] = figures_lr.profile(profile, spec.lr_profile.delta, figures_lr.intervals_of(lr_entry),
                                                     (lr_entry or {}).get("fit"))
        figures["lr-lm-eval"] = figures_lr.lm_eval(profile)
    if any("generated" in r.values for r in runs.values()):
        figures["generation"] = fc.per_step(runs, "generated", "Generation accuracy per step (greedy, val prompts)",
                                            "generation accuracy")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, fig in figures.items():
        target = args.out / f"{args.prefix}{name}.png"
        fig.write_image(str(target), width=1100, height=440)
        print(f"wrote {target}")
    report_claims = Path("reports") / spec.name / "claims.json"
    if report_claims.is_file():
        shutil.copyfile(report_claims, args.out / "claims.json")
        print(f"wrote {args.out / 'claims.json'} (from {report_claims})")
    else:
        print(f"note: {report_claims} not found: build the report first (nox -s report)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
