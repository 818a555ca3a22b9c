"""The loop, end to end: serve → feedback → close the day → collect → ingest → validate → OPE.

The packaged champion (a tiny DeepFM) serves 400 simulated viewers through the service's
ASGI app with its default ε-greedy exploration (ε = 0.3). Each viewer clicks each shown
item with the known probability of the synthetic model (0.7 when (viewer is u1) XOR
(item colour is c1), else 0.1; no position effect) and feedback is sent for the clicks.
Then the days are collected (`liveslate collect --now` after the close), ingested as the
`served` source, validated, and evaluated off-policy with the served propensities:
- the serving policy itself, under the served exploration: every importance weight is 1,
  so IPS equals the mean logged reward exactly (on-policy);
- the uniform policy: its true value is 0.4 (half of each room's items are the viewer's
  good colour: (0.7 + 0.1) / 2 whatever the viewer), which the DR and IPS intervals must
  cover, within a few standard errors.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

import serving_support as support
from liveslate.cli import app

N_VIEWERS = 400
TRUE_UNIFORM_VALUE = 0.4


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    support.bentoml_home(tmp_path_factory)
    return support.packaged_project(tmp_path_factory.mktemp("loop"))


def seeded_impression_ids(seed: int):
    """A stand-in for the service's random impression ids (same format): the draws, which are seeded
    by the id, become reproducible, so this statistical test gives the same answer on every run."""
    rng = np.random.default_rng(seed)

    def new_impression_id(ts: dt.datetime) -> str:
        return f"{ts.astimezone(dt.timezone.utc):%Y%m%d}-{rng.bytes(16).hex()}"
    return new_impression_id


def serve_viewers(record: dict) -> tuple[int, int]:
    """N_VIEWERS recommendations through the ASGI app, with simulated clicks; returns (impressions, clicks)."""
    from starlette.testclient import TestClient

    support.use_bento_arguments(record["bento_tag"])
    rng = np.random.default_rng(2024)
    clicks = 0
    with TestClient(support.asgi_app()) as client:
        for context in support.contexts(N_VIEWERS, seed=77):
            response = client.post("/recommend", json={"room_id": str(rng.choice(["r0", "r1"])),
                                                       "context": context, "k": 3})
            assert response.status_code == 200, response.text
            body = response.json()
            for entry in body["slate"]:
                if rng.random() < support.true_ctr(context, entry["item_id"]):
                    clicks += 1
                    answer = client.post("/feedback", json={"impression_id": body["impression_id"],
                                                            "item_id": entry["item_id"], "click": 1})
                    assert answer.status_code == 200, answer.text
    return N_VIEWERS, clicks


def cli(root: Path, tracking_uri: str, *command: str) -> str:
    result = CliRunner().invoke(app, [*command, "--params", str(root / "params.yaml")],
                                env={"MLFLOW_TRACKING_URI": tracking_uri})
    assert result.exit_code == 0, result.output
    return result.output


def test_serve_collect_ingest_validate_and_evaluate(project, monkeypatch):
    import bentoml

    from liveslate.config import load_params
    from liveslate.ope.bootstrap import BootstrapConfig
    from liveslate.ope.logs import prepare, reward_predictions
    from liveslate.ope.summary import on_policy_value, policy_estimates
    from liveslate.policies.base import Exploration
    from liveslate.policies.reference import UniformPolicy
    from liveslate.policies.registry import load_policy
    from liveslate.schema import item_index

    root, tracking_uri, record = project
    monkeypatch.setattr("liveslate.serving.recommender.new_impression_id", seeded_impression_ids(31))
    impressions, clicks = serve_viewers(record)

    # Close the day(s): collect each spool day once its end + the attribution window has passed.
    days = sorted(path.name for path in (root / "spool").iterdir() if path.is_dir())
    assert 1 <= len(days) <= 2  # two only when the test runs across midnight UTC
    for day in days:
        closed = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc) + dt.timedelta(days=1, minutes=31)
        output = cli(root, tracking_uri, "collect", "--day", day, "--now", closed.isoformat())
        assert f"collect {day}: collected" in output
    served = root / "data" / "served"
    assert sorted(p.name for p in served.iterdir() if p.is_dir()) == days
    assert (served / "catalog.parquet").exists()

    # Ingest the window ending at the last day (run.yaml as the DAG writes it), then validate.
    (root / "run.yaml").write_text(yaml.safe_dump({"run": {"interval_end": days[-1]}}))
    output = cli(root, tracking_uri, "ingest")
    assert f"{impressions} impressions, {clicks} feedback events used, 0 after the attribution window" in output
    cli(root, tracking_uri, "validate")
    validation = json.loads((root / "metrics" / "validation.json").read_text())
    logs = pd.read_parquet(root / "artifacts" / "validated" / "logs.parquet")
    catalog = pd.read_parquet(root / "artifacts" / "validated" / "catalog.parquet")
    assert len(logs) == 3 * impressions and int(logs["click"].sum()) == clicks, validation
    assert set(logs["partition_date"]) == set(days) and logs["policy"].str.startswith("deepfm_nokg@v").all()

    # OPE with the served propensities.
    params = load_params(root / "params.yaml")
    index = item_index(catalog)
    batch = prepare(logs, catalog, index)
    predictions = reward_predictions(batch, len(index), params.ope.reward_model, seed=params.seed)
    served_policy = load_policy(Path(bentoml.models.get(record["model_tag"]).path) / "policy")
    explore = Exploration("epsilon", epsilon=params.evaluate.exploration.epsilon)
    itself = policy_estimates(batch, served_policy, 3, predictions, params.ope, params.seed, explore)
    observed = on_policy_value(logs, BootstrapConfig(200, 0.95, 1))["value"]
    assert itself["ips"].value == pytest.approx(observed, abs=1e-9)
    assert itself["ips"].ess == pytest.approx(len(logs), rel=1e-9)  # every weight is exactly 1

    uniform = policy_estimates(batch, UniformPolicy(index.tolist()), 3, predictions, params.ope, params.seed)
    for name in ("ips", "dr"):
        result = uniform[name]
        assert result.ci_low <= TRUE_UNIFORM_VALUE <= result.ci_high, (name, result.summary())
        assert abs(result.value - TRUE_UNIFORM_VALUE) < 0.08, (name, result.summary())
    # The served policy prefers the viewer's good colour: on-policy it beats uniform by far.
    assert observed > TRUE_UNIFORM_VALUE + 0.1
