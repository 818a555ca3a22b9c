"""`liveslate kg`: validated catalogue + training logs → knowledge graph, KGE item vectors, metrics/kg.json."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liveslate.stages.common import ParamsOption, fail, open_project, read_input_parquet, say


def main(
    params: ParamsOption = Path("params.yaml"),
    progress: Annotated[bool, typer.Option(help="Show a progress bar per KGE.")] = True,
) -> None:
    """Build the catalogue graph, train and evaluate every KGE of params `kg.models`, write the vectors of `kg.model`."""
    from liveslate.io import write_text
    from liveslate.kg.output import training_curves, write_kg_outputs
    from liveslate.kg.pipeline import run_kg
    from liveslate.kg.plot import plot_item_projection
    from liveslate.schema import CATALOG_REQUIRED, LOG_REQUIRED
    from liveslate.tracking import stage_run

    project = open_project(params)
    config = project.params.kg
    catalog_path = project.artifacts / "validated" / "catalog.parquet"
    train_path = project.artifacts / "splits" / "train.parquet"
    catalog = read_input_parquet(catalog_path, "run `liveslate validate` first", CATALOG_REQUIRED)
    train = read_input_parquet(train_path, "run `liveslate split` first", LOG_REQUIRED)
    if config.plot_color not in catalog.columns:
        fail(f"kg.plot_color: column {config.plot_color!r} is not in {catalog_path} (has: {list(catalog.columns)})")
    try:
        run = run_kg(catalog, train, config, project.params.seed, progress=progress)
    except ValueError as err:
        fail(str(err))

    out = project.artifacts / "kg"
    metrics_path = project.metrics / "kg.json"
    write_kg_outputs(run, config, out, metrics_path)
    curves = project.plots / "kg_training.csv"
    write_text(curves, training_curves(run).to_csv(index=False))
    projection = project.plots / "kg_items_pca.png"
    colour = catalog.assign(item_id=catalog["item_id"].astype(str)).set_index("item_id").loc[
        list(run.graph.entities.ids["item"]), config.plot_color]
    plot_item_projection(run.vectors, colour.reset_index(drop=True),
                         f"{config.dataset}: {config.model} item vectors (PCA), by {config.plot_color}", projection)

    with stage_run(project.root, project.params, "kg", config, input_paths=(catalog_path, train_path)) as mlflow:
        mlflow.log_metrics({f"{name}_{key}": value for name, m in run.metrics.items()
                            for key, value in m.to_json().items()})
        mlflow.log_metrics({f"uniform_{key}": value for key, value in run.uniform.to_json().items()})
        mlflow.log_artifact(str(projection))
        mlflow.log_artifact(str(curves))
        mlflow.log_artifact(str(out / "summary.json"))
    table = ", ".join(f"{name} {m.mrr:.3f}" for name, m in run.metrics.items())
    say(f"kg: {run.graph.entities.num_entities} entities, {sum(len(s) for s in run.splits.values())} triples "
        f"({len(run.splits['test'])} test); filtered test MRR {table}; "
        f"{run.vectors.shape[0]} item vectors of size {run.vectors.shape[1]} ({config.model}) → {out}")
