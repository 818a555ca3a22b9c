"""`liveslate train --policy NAME`: fit one learned policy (the train@NAME stages of dvc.yaml).

Reads artifacts/splits/{train,valid}.parquet, artifacts/validated/catalog.parquet and, when
the policy's params say ``use_kg``, the KG item vectors (params ``train.kg_vectors``).
Writes artifacts/models/NAME/ (config.json, weights.pt, encoders.json), metrics/train_NAME.json
(training numbers and validation log-likelihoods against popularity and uniform random,
with bootstrap intervals), plots/train_NAME.csv (learning curves) and registers the model
directory as a new version of the MLflow model ``tracking.registered_model``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liveslate.stages.common import ParamsOption, fail, open_project, read_input_parquet, say

PolicyOption = Annotated[str, typer.Option("--policy", help="Learned policy to train (deepfm, deepfm_nokg, ...).")]
ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show the tqdm progress bar.")]


def main(policy: PolicyOption, params: ParamsOption = Path("params.yaml"), progress: ProgressOption = True) -> None:
    """Train POLICY on the time split, save it, report validation log-likelihoods, register it in MLflow."""
    import hashlib
    import json

    import pandas as pd

    from liveslate import schema
    from liveslate.config import as_flat_dict
    from liveslate.io import write_json, write_text
    from liveslate.policies.item_vectors import load_item_vectors
    from liveslate.policies.loglik import validation_log_likelihoods
    from liveslate.policies.mlflow_registry import register_policy_directory
    from liveslate.policies.reference import build_reference_policies
    from liveslate.policies.trainers import TRAINERS, get_trainer
    from liveslate.policies.training import NonFiniteLossError, TrainingData, TrainRun
    from liveslate.tracking import data_hash, file_hash, git_commit, stage_run

    project = open_project(params)
    p = project.params
    if policy not in TRAINERS:
        fail(f"--policy {policy!r}: not a trainable policy (expected one of {', '.join(sorted(TRAINERS))})", code=2)
    section = getattr(p.train, policy, None)
    if section is None:
        fail(f"{params}: train.{policy}: no hyper-parameter section for this policy", code=2)

    splits = project.artifacts / "splits"
    catalog_path = project.artifacts / "validated" / "catalog.parquet"
    inputs = [splits / "train.parquet", splits / "valid.parquet", catalog_path]
    hint = "run `liveslate split` (and the stages before it) first"
    train = read_input_parquet(inputs[0], hint, schema.LOG_REQUIRED)
    valid = read_input_parquet(inputs[1], hint, schema.LOG_REQUIRED)
    catalog = read_input_parquet(catalog_path, hint, schema.CATALOG_REQUIRED)
    index = schema.item_index(catalog)

    use_kg = bool(getattr(section, "use_kg", False))
    vectors = None
    kg_path = project.path(p.train.kg_vectors)
    if use_kg:
        try:
            vectors = load_item_vectors(kg_path, index)
        except (FileNotFoundError, ValueError) as err:
            fail(f"{err} (train.{policy}.use_kg is true)")
        inputs.append(kg_path)

    fingerprint = hashlib.md5(json.dumps({
        "policy": policy, "trainer": TRAINERS[policy], "seed": p.seed, "slate_size": p.validate.slate_size,
        "train": {k: str(v) for k, v in as_flat_dict(p.train).items()}, "inputs": file_hash(*inputs),
    }, sort_keys=True).encode()).hexdigest()
    run = TrainRun(name=policy, checkpoint_dir=project.path(p.train.checkpoint_dir) / policy, fingerprint=fingerprint,
                   resume=p.train.resume, progress=progress, threads=p.train.threads,
                   deterministic=p.train.deterministic, patience=p.train.patience, min_delta=p.train.min_delta)
    data = TrainingData(train=train, valid=valid, catalog=catalog, index=index, item_vectors=vectors,
                        slate_size=p.validate.slate_size, seed=p.seed)
    try:
        result = get_trainer(policy)(data, p, run)
    except NonFiniteLossError as err:
        fail(f"train {policy}: {err}")
    except ValueError as err:
        fail(f"train {policy}: {err}")
    if not result.history or any("step" not in row for row in result.history):
        fail(f"train {policy}: the trainer's learning curve must be non-empty with a 'step' in every row")

    model_dir = project.artifacts / "models" / policy
    result.policy.save(model_dir)

    references = build_reference_policies(train, [str(i) for i in index], None, p.policies.bts_mc_samples,
                                          p.policies.popularity_prior_impressions, p.seed)
    base_rate = float(train["click"].mean()) if len(train) else 0.0
    loglik = validation_log_likelihoods(result.policy, references, valid, catalog, index, base_rate,
                                        p.train.bootstrap_resamples, p.train.confidence, p.seed)
    metrics = {
        "policy": policy,
        "use_kg": use_kg,
        "rows": {"train": int(len(train)), "valid": int(len(valid)),
                 "train_clicks": int(train["click"].sum()), "valid_clicks": int(valid["click"].sum())},
        "training": result.metrics,
        "valid_loglik": loglik,
    }

    columns = list(dict.fromkeys(key for row in result.history for key in row))
    curve = pd.DataFrame(result.history, columns=columns)
    curve_path = project.plots / f"train_{policy}.csv"
    write_text(curve_path, curve.to_csv(index=False))

    with stage_run(project.root, p, f"train_{policy}", p.train, input_paths=tuple(inputs)) as mlflow:
        mlflow.set_tag("policy", policy)
        for row in result.history:
            mlflow.log_metrics({k: float(v) for k, v in row.items() if k != "step"}, step=int(row["step"]))
        choice = (loglik.get("choice") or {}).get("policies", {})
        mlflow.log_metrics({f"valid_choice_loglik_{name}": entry["value"] for name, entry in choice.items()
                            if entry["value"] is not None})
        mlflow.log_artifact(str(curve_path), artifact_path="plots")
        version = register_policy_directory(mlflow, model_dir, p.tracking.registered_model, {
            "policy": policy,
            "data_hash": data_hash(project.root),
            "input_hash": file_hash(*inputs),
            "git_commit": git_commit(project.root),
        })
        metrics["registry"] = {"registered_model": p.tracking.registered_model, "version": str(version.version),
                               "run_id": version.run_id}
    write_json(project.metrics / f"train_{policy}.json", metrics)

    summary = ""
    if choice:
        summary = "; valid choice log-lik " + ", ".join(
            f"{name} {entry['value']:.3f}" if entry["value"] is not None else f"{name} -inf"
            for name, entry in choice.items())
    say(f"train {policy}: {len(result.history)} evaluations → {model_dir}, registered "
        f"{p.tracking.registered_model} v{version.version}{summary}")
