"""The stages through the CLI on a small project in a temporary directory: ingest → validate → split.

The project holds the 400 real OBD rows of tests/data/obd (200 per logging policy, campaign
`men`) and a copy of the repository's params.yaml narrowed to them; MLflow tracks into a
SQLite file of the temporary directory.
"""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from liveslate.cli import app
from validate_support import OBD, men_catalog, obd_rows, write_canonical

REPO_PARAMS = Path(__file__).resolve().parents[1] / "params.yaml"


@pytest.fixture(scope="module")
def tracking(tmp_path_factory):
    """A SQLite MLflow store for the module, with MLflow's artefacts kept in the temporary directory."""
    home = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
        patch.chdir(home)  # MLflow's default artefact root is ./mlruns
        yield f"sqlite:///{home / 'mlflow.db'}"


def _project(root: Path, **sections) -> Path:
    params = yaml.safe_load(REPO_PARAMS.read_text())
    params["ingest"]["obd"] = {"campaigns": ["men"], "policies": ["random", "bts"], "max_rows_per_file": 200}
    for name, values in sections.items():
        params[name].update(values)
    root.mkdir(parents=True, exist_ok=True)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root / "params.yaml"


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


class _Tables(HTMLParser):
    """Counts tables and collects the text of the report."""

    def __init__(self) -> None:
        super().__init__()
        self.tables, self.text, self.tags = 0, [], set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        self.tables += tag == "table"
        assert not [a for a, v in attrs if a in ("src", "href")], "the report must be self-contained"

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def obd_project(tmp_path_factory, tracking):
    root = tmp_path_factory.mktemp("project")
    params = _project(root)
    shutil.copytree(OBD, root / "data" / "obd")
    outputs = [_run(stage, "--params", str(params)) for stage in ("ingest", "validate", "split")]
    return root, outputs


def test_ingest_validate_split_on_real_rows(obd_project):
    root, outputs = obd_project
    assert [code for code, _ in outputs] == [0, 0, 0], outputs
    assert "validate: logs 400 in, 400 passed, 0 rejected; catalogue 34 in, 34 passed, 0 rejected" in outputs[1][1]

    interim = pd.read_parquet(root / "artifacts/interim/logs.parquet")
    validated = pd.read_parquet(root / "artifacts/validated/logs.parquet")
    pd.testing.assert_frame_equal(validated, interim)
    rejects = pd.read_parquet(root / "artifacts/rejects/logs.parquet")
    assert len(rejects) == 0 and list(rejects.columns)[-2:] == ["source_row", "reject_reason"]

    metrics = json.loads((root / "metrics/validation.json").read_text())
    assert metrics["passed"] is True and metrics["failures"] == []
    assert (metrics["rows_in"], metrics["rows_passed"], metrics["rows_rejected"]) == (400, 400, 0)
    assert metrics["catalog"]["rows_in"] == 34
    assert len(metrics["logs"]["expectations"]) > 40 and all(metrics["logs"]["expectations"].values())
    assert metrics["logs"]["expectations"]["expect_column_values_to_be_between(propensity)"] is True
    assert metrics["logs"]["rejected_by_reason"] == {}

    split = json.loads((root / "metrics/split.json").read_text())
    assert sum(part["rows"] for part in split.values()) == 400


def test_the_report_is_a_self_contained_page_with_a_table_per_suite(obd_project):
    root, _ = obd_project
    page = _Tables()
    page.feed((root / "reports/validation.html").read_text())
    assert page.tables == 3  # the summary, then one table of expectations per suite (no reject reasons here)
    text = " ".join(page.text)
    assert "PASSED" in text and "Suite: logs" in text and "Suite: catalog" in text
    assert "propensity in (0, 1]" in text and "expect_compound_columns_to_be_unique" in text
    assert "script" not in page.tags


def test_each_stage_is_an_mlflow_run(obd_project, tracking):
    import mlflow

    mlflow.set_tracking_uri(tracking)
    runs = mlflow.search_runs(experiment_names=["liveslate"], filter_string="tags.`liveslate.stage` = 'validate'")
    assert len(runs) >= 1
    latest = runs.iloc[0]
    assert latest["metrics.rows_in"] == 400 and latest["metrics.rows_rejected"] == 0
    assert latest["params.validate.max_reject_share"] == "0.01"
    assert latest["tags.validation_passed"] == "true"


def test_bad_export_fails_with_a_summary_and_keeps_the_rejects(tmp_path, tracking):
    logs = pd.concat([obd_rows("random", 25), obd_rows("bts", 25)], ignore_index=True)
    logs.loc[logs["impression_id"] == "random/men/3", "propensity"] = 0.0
    logs.loc[logs["impression_id"] == "bts/men/4", "propensity"] = np.nan
    write_canonical(tmp_path / "export", logs, men_catalog())
    canonical = {"sources": ["canonical"], "canonical": {"directory": "export"}}
    params = _project(tmp_path, ingest=canonical)
    stale = tmp_path / "artifacts/validated/logs.parquet"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"from an earlier input")

    assert _run("ingest", "--params", str(params))[0] == 0
    code, output = _run("validate", "--params", str(params))
    assert code == 1
    assert "rejected: artifacts/interim/logs.parquet: column propensity: 1 row(s) rejected" in output
    assert "error: validation failed:" in output
    assert "artifacts/interim/logs.parquet: 2 of 50 rows rejected (4.00%), above validate.max_reject_share" in output
    rejects = pd.read_parquet(tmp_path / "artifacts/rejects/logs.parquet")
    assert dict(zip(rejects["impression_id"], rejects["reject_reason"])) == {
        "random/men/3": "expect_column_values_to_be_between(propensity)",
        "bts/men/4": "expect_column_values_to_not_be_null(propensity)"}
    assert not stale.exists()  # no validated output for an input that failed
    metrics = json.loads((tmp_path / "metrics/validation.json").read_text())
    assert metrics["passed"] is False and metrics["rows_rejected"] == 2
    assert metrics["logs"]["expectations"]["expect_column_values_to_be_between(propensity)"] is False
    assert metrics["logs"]["rejected_by_reason"] == {"expect_column_values_to_not_be_null(propensity)": 1,
                                                     "expect_column_values_to_be_between(propensity)": 1}
    assert "FAILED" in (tmp_path / "reports/validation.html").read_text()

    # the same input passes once two bad rows in fifty are acceptable; the good 48 go on
    params = _project(tmp_path, ingest=canonical, validate={"max_reject_share": 0.05})
    assert _run("validate", "--params", str(params))[0] == 0
    assert len(pd.read_parquet(tmp_path / "artifacts/validated/logs.parquet")) == 48


def test_validate_before_ingest_says_what_to_run(tmp_path):
    code, output = _run("validate", "--params", str(_project(tmp_path)))
    assert code == 1 and "artifacts/interim/logs.parquet: not found; run `liveslate ingest` first" in output
