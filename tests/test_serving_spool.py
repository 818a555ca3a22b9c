"""The spool writer and the impression index: durable, exactly-once lines, a partial line repaired,
the catalogue snapshot merged, impressions found across processes and after a restart."""

from __future__ import annotations

import datetime as dt
import json
import threading

import pandas as pd

from liveslate.serving.impression_index import ImpressionIndex, ShownImpression
from liveslate.serving.records import impression_day, new_impression_id
from liveslate.serving.spool_writer import SpoolWriter, merge_snapshot

DAY = dt.date(2024, 1, 2)


def catalog(items: list[str], first_seen: str = "2024-01-01") -> pd.DataFrame:
    return pd.DataFrame({"item_id": items, "room_id": [i.split("/")[0] for i in items],
                         "first_seen": pd.Timestamp(first_seen)})


def line(impression_id: str, items: list[str], ts: str = "2024-01-02T10:00:00+00:00") -> str:
    return json.dumps({"impression_id": impression_id, "ts": ts, "slate": [{"item_id": i} for i in items]})


def test_threads_write_every_line_once_and_whole(tmp_path):
    writer = SpoolWriter(tmp_path, catalog(["r0/0", "r0/1"]))
    payload = "x" * 3000  # longer than a pipe buffer's atomic write, so interleaving would show

    def work(thread: int) -> None:
        for i in range(100):
            writer.append("impressions", DAY, [json.dumps({"thread": thread, "i": i, "pad": payload})])

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files = list((tmp_path / "2024-01-02").glob("impressions-*.jsonl"))
    assert len(files) == 1  # one file per process
    records = [json.loads(text) for text in files[0].read_text().splitlines()]
    assert sorted((r["thread"], r["i"]) for r in records) == [(t, i) for t in range(8) for i in range(100)]
    assert pd.read_parquet(tmp_path / "2024-01-02" / "catalog.parquet")["item_id"].tolist() == ["r0/0", "r0/1"]


def test_partial_last_line_is_ended_before_the_next_record(tmp_path):
    folder = tmp_path / "2024-01-02"
    folder.mkdir()
    writer = SpoolWriter(tmp_path)
    path = writer.path("impressions", DAY)
    path.write_bytes(b'{"impression_id": "a"}\n{"impression_id": "half-writ')  # a writer killed mid-line
    writer.append("impressions", DAY, ['{"impression_id": "b"}'])
    assert path.read_bytes().splitlines() == [b'{"impression_id": "a"}', b'{"impression_id": "half-writ',
                                              b'{"impression_id": "b"}']


def test_snapshot_merge_keeps_every_bento_item_and_the_earliest_first_seen(tmp_path):
    target = tmp_path / "catalog.parquet"
    assert merge_snapshot(target, catalog(["r0/0", "r0/1"], "2024-01-01"))
    assert not merge_snapshot(target, catalog(["r0/1"], "2024-01-02"))  # nothing new: file untouched
    assert merge_snapshot(target, catalog(["r0/1", "r0/2"], "2024-01-02"))  # a later Bento with a new item
    merged = pd.read_parquet(target).set_index("item_id")["first_seen"]
    assert merged.to_dict() == {"r0/0": pd.Timestamp("2024-01-01"), "r0/1": pd.Timestamp("2024-01-01"),
                                "r0/2": pd.Timestamp("2024-01-02")}


def test_impression_ids_encode_the_utc_day():
    ts = dt.datetime(2024, 1, 2, 23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-5)))  # 04:59 UTC on the 3rd
    impression_id = new_impression_id(ts)
    assert impression_id.startswith("20240103-") and len(impression_id) == 41
    assert impression_day(impression_id) == dt.date(2024, 1, 3)
    assert impression_day("20240230-" + "0" * 32) is None and impression_day("nope") is None


def test_index_finds_other_processes_and_survives_a_restart(tmp_path):
    now = {"t": dt.datetime(2024, 1, 2, 12, tzinfo=dt.timezone.utc)}
    window = dt.timedelta(minutes=30)

    def is_open(day: dt.date) -> bool:
        return now["t"] < dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc) + window

    mine, other, late = (f"20240102-{c * 32}" for c in "abc")
    index = ImpressionIndex(tmp_path, is_open)
    index.add(ShownImpression(mine, DAY, now["t"], ("r0/1", "r0/2")))
    folder = tmp_path / "2024-01-02"
    folder.mkdir()
    # Another worker (pid 99999) wrote `other`, and is writing `late` right now (no newline yet).
    path = folder / "impressions-99999.jsonl"
    path.write_text(line(other, ["r0/3"]) + "\n" + line(late, ["r0/4"])[:20])
    assert index.lookup(mine).items == ("r0/1", "r0/2")
    assert index.lookup(other).items == ("r0/3",)
    assert index.lookup(late) is None
    path.write_text(line(other, ["r0/3"]) + "\n" + line(late, ["r0/4"]) + "\n")  # the line completes
    assert index.lookup(late).items == ("r0/4",)
    assert index.lookup("20240102-" + "d" * 32) is None and index.lookup("garbage") is None
    # A restart: a new index rebuilds itself from the spool.
    restarted = ImpressionIndex(tmp_path, is_open)
    assert restarted.load([DAY - dt.timedelta(days=1), DAY]) == 2
    assert restarted.lookup(other).items == ("r0/3",)
    # Once the day is closed its impressions are gone (feedback can no longer be recorded).
    now["t"] = dt.datetime(2024, 1, 3, 0, 31, tzinfo=dt.timezone.utc)
    assert restarted.lookup(other) is None and restarted.load([DAY]) == 0
