"""The `served` ingest source on hand-written spool days: every expected value is set by hand.

Day 2024-01-02 holds three impressions (k = 2) of a 30-minute attribution window:
- A at 10:00, feedback on its position-1 item at 10:05 (counted) and its position-0 item
  at 10:40 (late: dropped and counted);
- B at 11:00 with session s1 step 4, two feedback events on its position-0 item (click,
  then a purchase of 0.5: max → click 1, reward 0.5);
- C at 23:50, no feedback (click 0), numeric context missing (null);
plus a duplicate line of A, a malformed line, feedback on an unknown impression and on an
item outside B's slate. Day 2024-01-03 holds one impression D.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from liveslate.cli import app
from liveslate.data.served import read_interval_end, read_served, window
from liveslate.serving.records import FeedbackRecord, ImpressionRecord, SlateEntryRecord

UTC = dt.timezone.utc
WINDOW = dt.timedelta(minutes=30)
CANDIDATES = ("r0/0", "r0/1", "r0/2", "r0/3")


def ts(day: str, clock: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{clock}+00:00").astimezone(UTC)


def impression(letter: str, day: str, clock: str, slate: tuple[str, str], propensities: tuple[float, float],
               context: dict, session: str | None = None, step: int | None = None) -> ImpressionRecord:
    impression_id = f"{day.replace('-', '')}-{letter * 32}"
    return ImpressionRecord(
        impression_id=impression_id, ts=ts(day, clock), room_id="r0", policy="deepfm@v3", registered_version="3",
        model_tag="liveslate-policy:v3-abc", session_id=session, step=step, viewer_id=None, context=context,
        candidates=CANDIDATES, dropped_candidates=(), k=2,
        explore={"mode": "epsilon", "epsilon": 0.2, "temperature": 1.0, "seed": 5},
        slate=tuple(SlateEntryRecord(item, p, 0.1 * (2 - p), propensities[p]) for p, item in enumerate(slate)),
        slate_probability=propensities[0] * 0.5)


def feedback(record: ImpressionRecord, item: str, clock: str, click: int, reward: float, day: str) -> str:
    return FeedbackRecord(impression_id=record.impression_id, item_id=item, position=record.items.index(item)
                          if item in record.items else 0, click=click, reward=reward, ts=ts(day, clock)).to_json()


@pytest.fixture
def served(tmp_path):
    day1, day2 = tmp_path / "2024-01-02", tmp_path / "2024-01-03"
    day1.mkdir()
    day2.mkdir()
    a = impression("a", "2024-01-02", "10:00:00", ("r0/1", "r0/2"), (0.85, 0.05), {"ctx_user": "u1", "ctx_level": 0.5})
    b = impression("b", "2024-01-02", "11:00:00", ("r0/3", "r0/0"), (0.85, 0.85), {"ctx_user": "u0", "ctx_level": -1},
                   session="s1", step=4)
    c = impression("c", "2024-01-02", "23:50:00", ("r0/0", "r0/1"), (0.05, 0.05), {"ctx_user": "u1", "ctx_level": None})
    d = impression("d", "2024-01-03", "08:00:00", ("r0/2", "r0/3"), (0.85, 0.05), {"ctx_user": "u0", "ctx_level": 2})
    broken = '{"impression_id": "broken"'
    (day1 / "impressions-11.jsonl").write_text("\n".join([a.to_json(), b.to_json(), broken]) + "\n")
    (day1 / "impressions-12.jsonl").write_text("\n".join([c.to_json(), a.to_json()]) + "\n")
    ghost = impression("e", "2024-01-02", "12:00:00", ("r0/1", "r0/2"), (0.5, 0.5), {})
    (day1 / "feedback-11.jsonl").write_text("\n".join([
        feedback(a, "r0/2", "10:05:00", 1, 1.0, "2024-01-02"),
        feedback(a, "r0/1", "10:40:00", 1, 1.0, "2024-01-02"),
        feedback(b, "r0/3", "11:01:00", 1, 0.0, "2024-01-02"),
        feedback(ghost, "r0/1", "12:01:00", 1, 1.0, "2024-01-02"),
    ]) + "\n")
    (day1 / "feedback-12.jsonl").write_text("\n".join([
        feedback(b, "r0/3", "11:02:00", 1, 0.5, "2024-01-02"),
        feedback(b, "r0/2", "11:03:00", 1, 1.0, "2024-01-02"),
    ]) + "\n")
    (day2 / "impressions-11.jsonl").write_text(d.to_json() + "\n")
    catalog = pd.DataFrame({"item_id": list(CANDIDATES), "room_id": "r0",
                            "first_seen": pd.Timestamp("2024-01-01"), "cat_colour": ["c0", "c1", "c0", "c1"]})
    catalog.to_parquet(tmp_path / "catalog.parquet", index=False)
    return tmp_path, {"a": a, "b": b, "c": c, "d": d}


def test_rows_feedback_join_attribution_window_and_rejects(served):
    directory, records = served
    result = read_served(directory, window_days=1, interval_end=dt.date(2024, 1, 2), attribution_window=WINDOW)
    logs = result.logs.set_index(["impression_id", "position"])
    a, b, c = (records[k].impression_id for k in "abc")
    assert len(logs) == 6 and result.counts["impressions"] == 3 and result.counts["days"] == ["2024-01-02"]
    # A: the 10:05 click on position 1 counts; the 10:40 click on position 0 is 40 min late.
    assert logs.loc[(a, 1), "click"] == 1 and logs.loc[(a, 0), "click"] == 0
    assert result.counts["feedback_late"] == 1
    # B: click then a 0.5 purchase on position 0 → click 1, reward max(0, 0.5) = 0.5; position 1 untouched.
    assert (logs.loc[(b, 0), "click"], logs.loc[(b, 0), "reward"]) == (1, 0.5)
    assert (logs.loc[(b, 1), "click"], logs.loc[(b, 1), "reward"]) == (0, 0.0)
    assert result.counts["feedback_used"] == 3
    # C: no feedback at all.
    assert logs.loc[c, "click"].tolist() == [0, 0]
    # The served propensities and slate probability are copied, position by position.
    assert logs.loc[(a, 0), "propensity"] == 0.85 and logs.loc[(a, 1), "propensity"] == 0.05
    assert logs.loc[(a, 1), "slate_probability"] == pytest.approx(0.425)
    assert logs.loc[(a, 0), "candidates"] == list(CANDIDATES) and logs.loc[(a, 1), "candidates"] is None
    assert logs.loc[(b, 0), "session_id"] == "s1" and logs.loc[(b, 1), "step"] == 4
    assert pd.isna(logs.loc[(a, 0), "session_id"]) and pd.isna(logs.loc[(a, 0), "step"])
    assert (logs["partition_date"] == "2024-01-02").all() and (logs["policy"] == "deepfm@v3").all()
    # Context: ctx_level is numeric in every line (float64, null → NaN); ctx_user stays text.
    assert str(result.logs["ctx_level"].dtype) == "float64" and math.isnan(logs.loc[(c, 0), "ctx_level"])
    assert logs.loc[(b, 0), "ctx_level"] == -1.0 and logs.loc[(a, 1), "ctx_user"] == "u1"
    assert str(result.logs["ctx_user"].dtype) == "string"
    # Rejects: the malformed line, the duplicate of A, feedback on an unknown impression and
    # on an item outside B's slate — each with its file, line number and reason.
    rejects = {(r.file.split("/")[-1], r.line): r.reason for r in result.rejects.itertuples()}
    assert set(rejects) == {("impressions-11.jsonl", 3), ("impressions-12.jsonl", 2), ("feedback-11.jsonl", 4),
                            ("feedback-12.jsonl", 2)}
    assert "not a JSON line" in rejects[("impressions-11.jsonl", 3)]
    assert rejects[("impressions-12.jsonl", 2)].startswith("impression_id: duplicate")
    assert "is not an impression of 2024-01-02" in rejects[("feedback-11.jsonl", 4)]
    assert rejects[("feedback-12.jsonl", 2)].startswith("item_id: 'r0/2' is not in the slate")
    assert result.counts["feedback_rejected"] == 2 and result.counts["lines_rejected"] == 4
    assert sorted(result.catalog["item_id"]) == list(CANDIDATES)


def test_window_of_days(served):
    directory, _ = served
    assert window(directory, 1, dt.date(2024, 1, 3)) == [dt.date(2024, 1, 3)]
    assert window(directory, 2, dt.date(2024, 1, 3)) == [dt.date(2024, 1, 2), dt.date(2024, 1, 3)]
    # interval_end null: the window ends at the newest collected day.
    assert window(directory, 1, None) == [dt.date(2024, 1, 3)]
    assert window(directory, 7, dt.date(2024, 1, 1)) == []
    both = read_served(directory, 2, dt.date(2024, 1, 3), WINDOW)
    assert both.counts["impressions"] == 4 and set(both.logs["partition_date"]) == {"2024-01-02", "2024-01-03"}
    # A numeric value everywhere it is present: D's integer 2 reads as 2.0.
    assert both.logs.loc[both.logs["partition_date"] == "2024-01-03", "ctx_level"].tolist() == [2.0, 2.0]


def test_run_yaml_interval_end(tmp_path):
    path = tmp_path / "run.yaml"
    assert read_interval_end(path) is None
    path.write_text(yaml.safe_dump({"run": {"interval_end": None}}))
    assert read_interval_end(path) is None
    path.write_text("run:\n  interval_end: 2024-01-02\n")
    assert read_interval_end(path) == dt.date(2024, 1, 2)
    path.write_text(yaml.safe_dump({"run": {"interval_end": "2024/01/02"}}))
    with pytest.raises(ValueError, match=r"run.yaml: run.interval_end: expected YYYY-MM-DD or null"):
        read_interval_end(path)
    path.write_text(yaml.safe_dump({"interval_end": "2024-01-02"}))
    with pytest.raises(ValueError, match="expected a mapping run"):
        read_interval_end(path)


def test_ingest_and_validate_stages_on_served_days(served, tmp_path_factory):
    directory, records = served
    root = tmp_path_factory.mktemp("project")
    (root / "data").mkdir()
    directory.rename(root / "data" / "served")
    params = {"seed": 1, "tracking": {"experiment": "served-ingest"},
              "ingest": {"sources": ["served"], "served": {"window_days": 2}},
              "validate": {"slate_size": 3, "max_reject_share": 0.5},
              "spool": {"attribution_window_minutes": 30}}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "run.yaml").write_text(yaml.safe_dump({"run": {"interval_end": "2024-01-02"}}))
    runner = CliRunner()
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    result = runner.invoke(app, ["ingest", "--params", str(root / "params.yaml")], env=env)
    assert result.exit_code == 0, result.output
    assert "served days ['2024-01-02']: 3 impressions, 3 feedback events used, 1 after the attribution" in result.output
    summary = json.loads((root / "artifacts" / "interim" / "summary.json").read_text())
    assert summary["rows"] == 6 and summary["clicks"] == 2 and summary["served"]["lines_rejected"] == 4
    assert len(pd.read_parquet(root / "artifacts" / "interim" / "served_rejects.parquet")) == 4
    result = runner.invoke(app, ["validate", "--params", str(root / "params.yaml")], env=env)
    assert result.exit_code == 0, result.output
    validated = pd.read_parquet(root / "artifacts" / "validated" / "logs.parquet")
    assert len(validated) == 6
    # A row whose ts lies outside its partition day is rejected by validate, with the reason.
    interim = pd.read_parquet(root / "artifacts" / "interim" / "logs.parquet")
    interim.loc[interim["impression_id"] == records["c"].impression_id, "ts"] = pd.Timestamp("2024-01-03 00:10",
                                                                                             tz="UTC")
    interim.to_parquet(root / "artifacts" / "interim" / "logs.parquet", index=False)
    result = runner.invoke(app, ["validate", "--params", str(root / "params.yaml")], env=env)
    assert result.exit_code == 0, result.output
    rejected = pd.read_parquet(root / "artifacts" / "rejects" / "logs.parquet")
    assert len(rejected) == 2 and rejected["reject_reason"].str.contains("partition_end").all()
