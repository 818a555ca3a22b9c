"""Collect: only closed, non-empty days; atomic, idempotent, never changes a collected day."""

import datetime as dt
import json

import pandas as pd
import pytest

from liveslate.loop.collect import CollectError, collect_day, merge_catalog_snapshot
from liveslate.loop.spool import day_closed_at, is_closed, parse_day

DAY = dt.date(2026, 12, 2)
WINDOW = dt.timedelta(minutes=30)
AFTER_CLOSE = dt.datetime(2026, 12, 3, 0, 31, tzinfo=dt.timezone.utc)


def _spool_day(spool, impressions=2, feedback=1, catalog=None):
    folder = spool / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "impressions-11.jsonl").write_text("".join(json.dumps({"impression_id": f"i{j}"}) + "\n"
                                                         for j in range(impressions)))
    (folder / "feedback-11.jsonl").write_text("".join(json.dumps({"impression_id": "i0", "click": 1}) + "\n"
                                                      for _ in range(feedback)))
    if catalog is not None:
        catalog.to_parquet(folder / "catalog.parquet", index=False)
    return folder


def _catalog(items, first_seen):
    return pd.DataFrame({"item_id": items, "room_id": ["r1"] * len(items),
                         "first_seen": pd.to_datetime([first_seen] * len(items))})


def test_closing_time_is_day_end_plus_window():
    assert day_closed_at(DAY, WINDOW) == dt.datetime(2026, 12, 3, 0, 30, tzinfo=dt.timezone.utc)
    assert not is_closed(DAY, dt.datetime(2026, 12, 3, 0, 29, 59, tzinfo=dt.timezone.utc), WINDOW)
    assert is_closed(DAY, dt.datetime(2026, 12, 3, 0, 30, tzinfo=dt.timezone.utc), WINDOW)


def test_collects_a_closed_day_once_and_reruns_change_nothing(tmp_path):
    source = _spool_day(tmp_path / "spool", impressions=3, feedback=2)
    first = collect_day(tmp_path / "spool", tmp_path / "served", DAY, AFTER_CLOSE, WINDOW)
    assert (first.impressions, first.feedback, first.already_collected) == (3, 2, False)
    copied = tmp_path / "served" / "2026-12-02" / "impressions-11.jsonl"
    assert copied.read_bytes() == (source / "impressions-11.jsonl").read_bytes()
    again = collect_day(tmp_path / "spool", tmp_path / "served", DAY, AFTER_CLOSE, WINDOW)
    assert again.already_collected
    assert not [p for p in (tmp_path / "served").iterdir() if p.name.startswith(".")]  # no staging left


def test_an_open_day_is_refused_and_nothing_is_copied(tmp_path):
    _spool_day(tmp_path / "spool")
    with pytest.raises(CollectError, match="not closed until 2026-12-03T00:30:00"):
        collect_day(tmp_path / "spool", tmp_path / "served", DAY,
                    dt.datetime(2026, 12, 3, 0, 10, tzinfo=dt.timezone.utc), WINDOW)
    assert not (tmp_path / "served").exists()


@pytest.mark.parametrize("impressions, message", [(None, "no spool folder"), (0, "no impression lines")])
def test_a_missing_or_empty_day_fails_clearly(tmp_path, impressions, message):
    if impressions is not None:
        _spool_day(tmp_path / "spool", impressions=impressions)
    with pytest.raises(CollectError, match=message):
        collect_day(tmp_path / "spool", tmp_path / "served", DAY, AFTER_CLOSE, WINDOW)
    assert not (tmp_path / "served" / DAY.isoformat()).exists()


def test_a_collected_day_is_never_changed(tmp_path):
    source = _spool_day(tmp_path / "spool")
    collect_day(tmp_path / "spool", tmp_path / "served", DAY, AFTER_CLOSE, WINDOW)
    (source / "impressions-11.jsonl").write_text('{"impression_id": "rewritten"}\n')
    with pytest.raises(CollectError, match="already collected with different content"):
        collect_day(tmp_path / "spool", tmp_path / "served", DAY, AFTER_CLOSE, WINDOW)


def test_catalogue_snapshots_merge_keeping_the_first_seen_date(tmp_path):
    cumulative = tmp_path / "catalog.parquet"
    day1 = tmp_path / "day1.parquet"
    _catalog(["r1/a", "r1/b"], "2026-12-01").to_parquet(day1, index=False)
    assert merge_catalog_snapshot(cumulative, day1) == 2
    day2 = tmp_path / "day2.parquet"
    _catalog(["r1/b", "r1/c"], "2026-12-02").to_parquet(day2, index=False)
    assert merge_catalog_snapshot(cumulative, day2) == 1
    merged = pd.read_parquet(cumulative)
    assert merged["item_id"].tolist() == ["r1/a", "r1/b", "r1/c"]  # the stable index order: b keeps day 1
    assert merged.set_index("item_id").loc["r1/b", "first_seen"] == pd.Timestamp("2026-12-01")


def test_collect_merges_the_days_catalogue(tmp_path):
    _spool_day(tmp_path / "spool", catalog=_catalog(["r1/a"], "2026-12-02"))
    collect_day(tmp_path / "spool", tmp_path / "served", DAY, AFTER_CLOSE, WINDOW)
    assert pd.read_parquet(tmp_path / "served" / "catalog.parquet")["item_id"].tolist() == ["r1/a"]


@pytest.mark.parametrize("text", ["2026-13-01", "yesterday", ""])
def test_bad_days_are_named(text):
    with pytest.raises(ValueError, match="expected a date as YYYY-MM-DD"):
        parse_day(text)


def test_cli_reports_an_open_day_with_exit_code_1(tmp_path):
    from typer.testing import CliRunner

    from liveslate.cli import app

    (tmp_path / "params.yaml").write_text("spool:\n  directory: spool\n")
    _spool_day(tmp_path / "spool")
    result = CliRunner().invoke(app, ["collect", "--params", str(tmp_path / "params.yaml"), "--day", "2026-12-02",
                                      "--now", "2026-12-02T23:00:00+00:00"])
    assert result.exit_code == 1
    assert "not closed" in result.output
    ok = CliRunner().invoke(app, ["collect", "--params", str(tmp_path / "params.yaml"), "--day", "2026-12-02",
                                  "--now", "2026-12-03T01:00:00+00:00"])
    assert ok.exit_code == 0, ok.output
    assert (tmp_path / "data" / "served" / "2026-12-02" / "impressions-11.jsonl").exists()


def test_a_collect_killed_mid_copy_leaves_nothing_and_succeeds_on_retry(tmp_path, monkeypatch):
    """A task killed half-way (here: the copy dies after the first file) leaves no half day behind."""
    import shutil

    from liveslate.loop import collect as collect_module

    _spool_day(tmp_path / "spool", impressions=3, feedback=2)
    real_copy2 = shutil.copy2
    copied = []

    def dying_copy(src, dst, *args, **kwargs):
        if copied:
            raise KeyboardInterrupt("killed mid-copy")
        copied.append(src)
        return real_copy2(src, dst, *args, **kwargs)

    real_copytree = shutil.copytree
    monkeypatch.setattr(collect_module.shutil, "copytree",
                        lambda src, dst, **kw: real_copytree(src, dst, **{**kw, "copy_function": dying_copy}))
    with pytest.raises(KeyboardInterrupt):
        collect_day(tmp_path / "spool", tmp_path / "served", DAY, AFTER_CLOSE, WINDOW)
    assert not (tmp_path / "served" / DAY.isoformat()).exists()
    assert not [p for p in (tmp_path / "served").iterdir()]  # the staging folder is gone too
    monkeypatch.setattr(collect_module.shutil, "copytree", real_copytree)
    retry = collect_day(tmp_path / "spool", tmp_path / "served", DAY, AFTER_CLOSE, WINDOW)
    assert (retry.impressions, retry.feedback, retry.already_collected) == (3, 2, False)
