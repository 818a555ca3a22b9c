"""`liveslate evaluate`: every policy on the test split → metrics/evaluation.json and the HTML report.

Policies: the trained ones of ``evaluate.policies`` (artifacts/models/<name>/), the
reference ones of ``evaluate.references``, and the version holding the registry alias
``champion`` before this run (downloaded from its registry source), as the row ``champion``.
"""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, read_input_parquet, say

DETAILS = Path("evaluation") / "details.json"


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Rank and off-policy-evaluate every policy on the test split; write the metrics, plots and report."""
    import tempfile

    from tqdm import tqdm

    from mlflow.exceptions import MlflowException

    from liveslate.evaluation import report
    from liveslate.evaluation.evaluate import EvaluationSetup, evaluate_policy, evaluation_payload, logging_values, \
        prepare_split, split_counts
    from liveslate.evaluation.policy_set import load_trained, load_version, matching_version, reference_policy
    from liveslate.evaluation.registry_ops import Registry, RegistryError
    from liveslate.evaluation.select import Candidate, Incumbent, decide
    from liveslate.evaluation.summary import details_payload
    from liveslate.io import atomic_path, read_json, write_json, write_text
    from liveslate.schema import item_index
    from liveslate.tracking import stage_run

    project = open_project(params)
    p = project.params
    paths = {"test": project.artifacts / "splits" / "test.parquet",
             "train": project.artifacts / "splits" / "train.parquet",
             "catalog": project.artifacts / "validated" / "catalog.parquet"}
    hint = "run `dvc repro` up to the split stage first"
    test, train, catalog = (read_input_parquet(paths[name], hint) for name in ("test", "train", "catalog"))
    index = item_index(catalog)
    setup = EvaluationSetup.from_params(p)

    try:
        trained = load_trained(project.artifacts / "models", p.evaluate.policies)
    except ValueError as error:  # a tampered or unreadable model directory names its file
        fail(f"evaluate: {error}")
    registry = Registry.for_project(project.root, p)
    versions = {name: matching_version(registry, name, directory) for name, directory in trained.directories.items()}
    skipped = dict(trained.skipped)
    for name, version in versions.items():
        if version is None:
            say(f"evaluate: {name}: no registry version holds these artefacts; it is evaluated but cannot be selected")
    policies = dict(trained.policies)
    for name in p.evaluate.references:
        policies[name] = reference_policy(name, index, train, project.path(p.policies.bts_prior), p)

    incumbent = registry.champion()
    with tempfile.TemporaryDirectory(prefix="liveslate-champion-") as tmp:
        if incumbent is not None:
            try:
                champion = load_version(registry, incumbent, Path(tmp))
                champion.name = "champion"
                policies["champion"] = champion
            except (MlflowException, RegistryError, FileNotFoundError, ValueError, OSError) as error:
                skipped["champion"] = f"{incumbent.label()} could not be loaded from {incumbent.source}: {error}"
        try:
            split = prepare_split(test, catalog, index, p.ope, p.seed, p.evaluate.ope_logging_policies)
        except ValueError as error:
            fail(f"{paths['test']}: {error}")
        evaluations = {}
        for name, policy in tqdm(policies.items(), desc="evaluate", unit="policy"):
            try:
                evaluations[name] = evaluate_policy(policy, split, setup)
            except ValueError as error:
                fail(f"evaluate {name} on {paths['test']}: {error}")

    payload = evaluation_payload(evaluations, logging_values(split.batch.logs, setup.bootstrap),
                                 split_counts(split))
    details = details_payload(
        evaluations, setup, split.batch.logs, baseline=p.evaluate.baseline,
        versions={name: (v.version if v else None) for name, v in versions.items()},
        champion=None if incumbent is None or "champion" not in evaluations
        else {"version": incumbent.version, "policy": incumbent.policy},
        skipped=skipped, reward_model_folds=p.ope.reward_model.folds,
        ope_logging_policies=p.evaluate.ope_logging_policies)
    preview = decide(payload, [Candidate(n, v.version if v else None, bool(v and v.rolled_back))
                               for n, v in versions.items()],
                     None if incumbent is None else Incumbent(incumbent.policy, incumbent.version),
                     details["champion"]["version"] if details["champion"] else None, setup.primary, p.select,
                     setup.reward_range).to_json()
    details["selection_preview"] = preview
    backtest_path = project.metrics / "backtest.json"
    backtest = read_json(backtest_path) if backtest_path.exists() else None

    write_json(project.metrics / "evaluation.json", payload)
    write_json(project.artifacts / DETAILS, details)
    figures = report.figures(payload, details, backtest)
    for name, png in figures.items():
        target = project.plots / "evaluation" / name
        with atomic_path(target) as tmp_png:
            tmp_png.write_bytes(png)
    write_text(project.reports / "evaluation.html", report.render(payload, details, backtest, preview, figures))

    with stage_run(project.root, p, "evaluate", p.evaluate, input_paths=tuple(paths.values())) as mlflow:
        for name, row in payload["policies"].items():
            metrics = {f"{name}.{k}": row[k] for k in ("mrr", "hit_at_1", "ndcg_at_3") if k in row}
            metrics.update({f"{name}.{est}": r["value"] for est, r in row["ope"].items()})
            mlflow.log_metrics(metrics)
        mlflow.log_artifact(str(project.reports / "evaluation.html"))
    for name, row in payload["policies"].items():
        primary = row["ope"].get(setup.primary)
        ranking = f"MRR {row['mrr']:.3f}, Hit@1 {100 * row['hit_at_1']:.1f} %" if "mrr" in row else "no ranking"
        value = (f"{setup.primary} {100 * primary['value']:.3f} [{100 * primary['ci_low']:.3f}, "
                 f"{100 * primary['ci_high']:.3f}] clicks/100 slots, ESS {primary['ess']:.0f}") if primary else \
            f"{setup.primary} undefined"
        say(f"evaluate: {name:12s} {ranking}; {value}")
    for name, reason in skipped.items():
        say(f"evaluate: skipped {name}: {reason}")
    say(f"evaluate: selection preview: {preview['reason']}")
    say(f"evaluate: wrote {project.metrics / 'evaluation.json'} and {project.reports / 'evaluation.html'}")
