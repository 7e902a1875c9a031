"""The stages a study runs, in the order they run: adding a stage means writing its class (``search.stage.Stage``)
and listing it here (a fixed design also names itself in ``spec.stages.STAGES``, the ``--stage`` choices)."""

from __future__ import annotations

from prefstudy.search.confirm import ConfirmStage
from prefstudy.search.stage import Request, Stage
from prefstudy.search.stage_search import SearchStage
from prefstudy.search.stages import DriftStage, LrProfileStage
from prefstudy.spec import SpecError, StudySpec
from prefstudy.spec.stages import ROLES

STAGES: tuple[Stage, ...] = (SearchStage(), ConfirmStage(), DriftStage(), LrProfileStage())
if tuple(stage.name for stage in STAGES) != ROLES:
    raise RuntimeError(f"search.registry lists {[s.name for s in STAGES]}, spec.stages.ROLES {list(ROLES)}")


def by_name(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise SpecError(f"unknown stage '{name}' (known: {', '.join(s.name for s in STAGES)})")


def for_request(spec: StudySpec, request: Request) -> list[Stage]:
    """The stages this process runs: a worker process (``request.role``) its one stage, a launching process every
    stage the request selects, in order."""
    if request.role is not None:
        return [by_name(request.role)]
    return [stage for stage in STAGES if stage.selected(spec, request)]
