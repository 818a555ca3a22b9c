"""`liveslate kg-multimodal`: the text and image catalogues → multimodal item vectors, ablation metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(
    params: ParamsOption = Path("params.yaml"),
    progress: Annotated[bool, typer.Option(help="Show progress bars (encoders, training epochs).")] = True,
) -> None:
    """For each catalogue of params `kg_multimodal.datasets`: build its graph, encode its text and
    photos (offline, cached), train the fusion-GNN ablation and the KGE baselines, write the item
    vectors of `kg_multimodal.output` and the metrics."""
    from liveslate.config import KgHierarchyLink
    from liveslate.data.multimodal import (CLOTHING_HIERARCHY, clothing_catalog, fashion_catalog,
                                           read_clothing_reviews)
    from liveslate.io import write_json, write_text
    from liveslate.kg.fusion_ablation import run_multimodal
    from liveslate.kg.multimodal_output import (metrics_payload, probe_payload, training_curves,
                                                write_dataset_outputs)
    from liveslate.tracking import stage_run

    project = open_project(params)
    config = project.params.kg_multimodal
    runs, inputs = [], []
    for dataset in config.datasets:
        try:
            if dataset == "clothing_text":
                path = project.path(config.clothing_text.path)
                source = clothing_catalog(read_clothing_reviews(path), config.clothing_text)
                hierarchy = tuple(KgHierarchyLink(parent=p, child=c) for p, c in CLOTHING_HIERARCHY)
                inputs.append(path)
            else:
                source = fashion_catalog(project.root, config.fashion_mnist)
                hierarchy = ()
                inputs.append(project.path(config.fashion_mnist.directory) / "items.csv")
            run = run_multimodal(dataset, source.catalog, hierarchy, project.root, config, project.params.seed,
                                 project.path(config.feature_cache), progress=progress)
        except (FileNotFoundError, ValueError) as err:
            fail(f"kg_multimodal {dataset}: {err}")
        write_dataset_outputs(run, source, config, project.artifacts / "kg_multimodal" / dataset)
        runs.append(run)
        table = ", ".join(f"{name} {m.mrr:.3f}" for name, m in run.metrics.items())
        say(f"kg_multimodal {dataset}: {len(source.catalog)} items ({len(source.rejects)} rejects), "
            f"modalities {sorted(run.modalities.features) or 'none'}; filtered test MRR {table}")

    write_json(project.metrics / "kg_multimodal.json", metrics_payload(runs))
    write_json(project.metrics / "kg_multimodal_probe.json", probe_payload(runs))
    write_text(project.plots / "kg_multimodal_training.csv", training_curves(runs).to_csv(index=False))
    with stage_run(project.root, project.params, "kg_multimodal", config, input_paths=tuple(inputs)) as mlflow:
        mlflow.log_metrics({f"{run.dataset}.{name}.{key}": value for run in runs
                            for name, m in run.metrics.items() for key, value in m.to_json().items()})
        mlflow.log_metrics({f"{run.dataset}.probe.{name}.accuracy": result["accuracy"] for run in runs
                            for name, result in run.probe.items() if isinstance(result, dict)})
        for run in runs:
            mlflow.log_artifact(str(project.artifacts / "kg_multimodal" / run.dataset / "summary.json"),
                                artifact_path=run.dataset)
    say(f"kg_multimodal: wrote {project.metrics / 'kg_multimodal.json'} and the item vectors of "
        f"{config.output} under {project.artifacts / 'kg_multimodal'}")
