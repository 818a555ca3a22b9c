"""`liveslate ope-benchmark`: the Open Bandit cross-policy protocol on the validated OBD logs.

Writes metrics/ope_benchmark.json (relative error of every estimator, both directions)
and reports/ope_benchmark.html.
"""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, read_input_parquet, say


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Estimate BTS's CTR from the uniform-random logs and the reverse; compare with their on-policy CTR."""
    from liveslate.io import write_json, write_text
    from liveslate.schema import CATALOG_REQUIRED, LOG_REQUIRED
    from liveslate.ope.benchmark import cross_policy_benchmark, render_html
    from liveslate.tracking import stage_run

    project = open_project(params)
    config = project.params.ope
    logs_path = project.artifacts / "validated" / "logs.parquet"
    catalog_path = project.artifacts / "validated" / "catalog.parquet"
    prior_path = project.path(project.params.policies.bts_prior)
    logs = read_input_parquet(logs_path, "run `liveslate validate` first", LOG_REQUIRED)
    catalog = read_input_parquet(catalog_path, "run `liveslate validate` first", CATALOG_REQUIRED)
    if not prior_path.exists():
        fail(f"{prior_path}: not found; run `liveslate fetch-data` first")
    try:
        payload = cross_policy_benchmark(logs, catalog, prior_path,
                                         config, project.params.seed, project.params.policies.bts_mc_samples)
    except (FileNotFoundError, ValueError) as err:
        fail(str(err))
    write_json(project.metrics / "ope_benchmark.json", payload)
    write_text(project.reports / "ope_benchmark.html", render_html(payload))
    with stage_run(project.root, project.params, "ope_benchmark", config,
                   input_paths=(logs_path, catalog_path, prior_path)) as mlflow:
        mlflow.log_metrics({
            f"{direction}.{estimator}.relative_error_mean": result["relative_error_mean"]
            for direction, body in payload["directions"].items()
            for estimator, result in body["estimators"].items()
        })
    for direction, body in payload["directions"].items():
        primary = body["estimators"].get(config.primary)
        truth = body["ground_truth"]["value"]
        if primary is not None:
            say(f"ope_benchmark {direction}: truth {truth:.5f}, {config.primary} {primary['value']:.5f}, "
                f"relative error {primary['relative_error_mean']:.3f} ± {primary['relative_error_std']:.3f}")
