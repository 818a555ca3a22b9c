"""Real rows for the ingest and validate tests, and a shortcut to run one GX suite.

``tests/data/obd`` holds the first 200 rows of the Open Bandit ``men`` campaign under both
logging policies and both copies of its item_context.csv (see the README there), laid out
like ``data/obd`` so ingest reads it unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from liveslate.config import ValidateConfig
from liveslate.data.expectations import catalog_expectations, log_expectations, prepare_logs
from liveslate.data.obd import log_path, read_obd_catalog, read_obd_log
from liveslate.data.validate import ExpectationOutcome, gx_context, run_suite

DATA = Path(__file__).parent / "data"
OBD = DATA / "obd"
FIRST_DAY = pd.Timestamp("2019-11-24", tz="UTC")


def obd_rows(policy: str, n: int) -> pd.DataFrame:
    """The first ``n`` rows of the real ``men`` log of ``policy``, in the canonical schema."""
    return read_obd_log(log_path(OBD, policy, "men"), policy, "men", max_rows=n)


def men_catalog() -> pd.DataFrame:
    """The real ``men`` catalogue (34 items) with the shared categorical encoding."""
    return read_obd_catalog(OBD, "men", ("random", "bts"), first_seen=FIRST_DAY)


def outcomes_by_key(outcomes: list[ExpectationOutcome]) -> dict[str, ExpectationOutcome]:
    keys = [o.key for o in outcomes]
    assert len(keys) == len(set(keys)), f"expectation keys are not unique: {keys}"
    return {o.key: o for o in outcomes}


def check_logs(logs: pd.DataFrame, catalog: pd.DataFrame,
               config: ValidateConfig = ValidateConfig()) -> dict[str, ExpectationOutcome]:
    """Run only the logs suite on ``logs`` (against the whole ``catalog``)."""
    prepared = prepare_logs(logs, catalog)
    spec = log_expectations(config, prepared, catalog["item_id"].astype(str).tolist())
    return outcomes_by_key(run_suite(gx_context(), prepared, spec))


def check_catalog(catalog: pd.DataFrame, config: ValidateConfig = ValidateConfig()) -> dict[str, ExpectationOutcome]:
    """Run only the catalogue suite on ``catalog``."""
    frame = catalog.reset_index(drop=True)
    return outcomes_by_key(run_suite(gx_context(), frame, catalog_expectations(config, frame)))


def failed(outcomes: dict[str, ExpectationOutcome]) -> dict[str, list[int]]:
    """Failing expectation key → the rows it flagged (empty for a table-level failure)."""
    return {key: list(o.rows) for key, o in outcomes.items() if not o.success}


def write_canonical(directory: Path, logs: pd.DataFrame, catalog: pd.DataFrame) -> tuple[Path, Path]:
    """Write ``logs.csv`` and ``catalog.csv`` as a user's canonical export would look."""
    directory.mkdir(parents=True, exist_ok=True)
    logs = logs.copy()
    logs["candidates"] = [json.dumps(list(v)) if isinstance(v, (list, tuple)) else None for v in logs["candidates"]]
    logs_path, catalog_path = directory / "logs.csv", directory / "catalog.csv"
    logs.to_csv(logs_path, index=False)
    catalog.to_csv(catalog_path, index=False)
    return logs_path, catalog_path
