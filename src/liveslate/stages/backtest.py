"""`liveslate backtest`: rolling-origin evaluation by day on the validated logs → metrics/backtest.json."""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(params: ParamsOption = Path("params.yaml")) -> None:
    """Retrain the policies of params `backtest` on the days before each day, test on that day, pool the days."""
    import pandas as pd

    from liveslate.config import ConfigError
    from liveslate.evaluation.backtest import budget_params, run_backtest
    from liveslate.io import write_json
    from liveslate.schema import item_index
    from liveslate.tracking import stage_run

    project = open_project(params)
    p = project.params
    for name in p.backtest.policies:
        try:
            budget_params(p, name, p.backtest.train_overrides.get(name, {}), p.backtest.use_kg_vectors)
        except ConfigError as error:
            fail(f"{params}: {error}", code=2)
    logs_path = project.artifacts / "validated" / "logs.parquet"
    catalog_path = project.artifacts / "validated" / "catalog.parquet"
    for path in (logs_path, catalog_path):
        if not path.exists():
            fail(f"{path}: not found; run `liveslate validate` first")
    logs, catalog = pd.read_parquet(logs_path), pd.read_parquet(catalog_path)
    index = item_index(catalog)
    vectors = None
    if p.backtest.use_kg_vectors:
        from liveslate.policies.item_vectors import load_item_vectors

        try:
            vectors = load_item_vectors(project.path(p.train.kg_vectors), index)
        except (FileNotFoundError, ValueError) as error:
            fail(f"{error} (backtest.use_kg_vectors is true)")
    try:
        payload = run_backtest(logs, catalog, index, p, project.path(p.policies.bts_prior), vectors)
    except ValueError as error:
        fail(f"{logs_path}: {error}")
    write_json(project.metrics / "backtest.json", payload)
    with stage_run(project.root, p, "backtest", p.backtest, input_paths=(logs_path, catalog_path)) as mlflow:
        for name, row in payload["policies"].items():
            mlflow.log_metrics({f"{name}.{k}": row[k] for k in ("mrr", "hit_at_1", "ndcg_at_3") if k in row})
            mlflow.log_metrics({f"{name}.{est}": r["value"] for est, r in row["ope"].items()})
    for note in payload["notes"]:
        say(f"backtest: note: {note}")
    folds = ", ".join(f"{f['test_day']} ({f['test_clicks']} clicks)" for f in payload["folds"])
    say(f"backtest: {len(payload['folds'])} folds: {folds}")
    primary = p.ope.primary
    for name, row in payload["policies"].items():
        estimate = row["ope"].get(primary)
        ranking = f"MRR {row['mrr']:.3f}, Hit@1 {100 * row['hit_at_1']:.1f} %" if "mrr" in row else "no ranking"
        value = f"{primary} {100 * estimate['value']:.3f} clicks/100 slots" if estimate else f"{primary} undefined"
        say(f"backtest: {name:12s} {ranking}; {value}")
