"""`liveslate select`: apply the champion rule to metrics/evaluation.json; move the alias only when it says so.

Reads the evaluation, its details (the registry version behind each evaluated policy) and
the registry's current alias holder; writes metrics/selection.json {champion,
registered_version, previous, promoted, reason, ...}. A re-run on the same evaluation
and registry moves nothing: the promoted version is then the champion itself.
"""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Choose the champion (highest lower bound of the primary estimator, guards, margin) and move the alias."""
    from liveslate.evaluation.registry_ops import Registry, RegistryError
    from liveslate.evaluation.select import Candidate, Incumbent, decide
    from liveslate.io import read_json, write_json
    from liveslate.stages.evaluate import DETAILS
    from liveslate.tracking import stage_run

    project = open_project(params)
    p = project.params
    evaluation_path, details_path = project.metrics / "evaluation.json", project.artifacts / DETAILS
    for path in (evaluation_path, details_path):
        if not path.exists():
            fail(f"{path}: not found; run `liveslate evaluate` first")
    try:
        evaluation, details = read_json(evaluation_path), read_json(details_path)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError is a ValueError
        fail(f"{evaluation_path} or {details_path}: not valid JSON ({error}); run `liveslate evaluate` again")
    if not isinstance(evaluation, dict) or not isinstance(evaluation.get("policies"), dict):
        fail(f"{evaluation_path}: expected a mapping with a 'policies' mapping (the evaluate stage's output)")
    registry = Registry.for_project(project.root, p)
    candidates = []
    for name, version in (details.get("versions") or {}).items():
        if version is None:
            candidates.append(Candidate(name, None))
            continue
        try:
            candidates.append(Candidate(name, str(version), registry.version(str(version)).rolled_back))
        except RegistryError:
            candidates.append(Candidate(name, None))
    current = registry.champion()
    incumbent = None if current is None else Incumbent(current.policy, current.version)
    evaluated = (details.get("champion") or {}).get("version")
    low, high = p.evaluate.reward_range
    decision = decide(evaluation, candidates, incumbent, evaluated, p.ope.primary, p.select, (low, high))
    if decision.promoted:
        registry.promote(decision.registered_version)
    payload = decision.to_json()
    write_json(project.metrics / "selection.json", payload)
    with stage_run(project.root, p, "select", p.select, input_paths=(evaluation_path, details_path)) as mlflow:
        mlflow.set_tags({"selection.promoted": str(decision.promoted),
                         "selection.champion": f"{decision.champion} v{decision.registered_version}",
                         "selection.previous": str(decision.previous)})
        mlflow.log_dict(payload, "selection.json")
    moved = (f"promoted {decision.champion} v{decision.registered_version} to '{p.select.alias}'"
             if decision.promoted else "alias unchanged")
    say(f"select: {moved}: {decision.reason}")
