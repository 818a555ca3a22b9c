"""The time split: fractions counted in impressions, no impression across a cut, no leakage in time."""

import pandas as pd
import pytest

from liveslate.config import ConfigError, SplitConfig, from_mapping
from liveslate.data.split import split_by_time


def _logs(n_impressions: int, rows_per_impression: int = 1) -> pd.DataFrame:
    rows = []
    for i in range(n_impressions):
        for p in range(rows_per_impression):
            rows.append({
                "impression_id": f"imp{i:03d}",
                "position": p,
                # positions of one impression are logged a few ms apart: the impression's time is its first row
                "ts": pd.Timestamp("2019-11-24", tz="UTC") + pd.Timedelta(minutes=i, milliseconds=p),
                "click": int(i % 7 == 0),
            })
    return pd.DataFrame(rows).sample(frac=1.0, random_state=0)  # input order must not matter


def test_fractions_are_counted_in_impressions():
    parts = split_by_time(_logs(10, rows_per_impression=3), SplitConfig(train=0.7, valid=0.1, test=0.2))
    # 10 impressions: round(7) train, round(8) - 7 = 1 valid, 2 test; 3 rows each
    assert [parts[k]["impression_id"].nunique() for k in ("train", "valid", "test")] == [7, 1, 2]
    assert [len(parts[k]) for k in ("train", "valid", "test")] == [21, 3, 6]


def test_no_impression_crosses_a_cut_and_time_is_ordered():
    parts = split_by_time(_logs(101, rows_per_impression=3), SplitConfig(train=0.6, valid=0.2, test=0.2))
    ids = [set(parts[k]["impression_id"]) for k in ("train", "valid", "test")]
    assert not (ids[0] & ids[1]) and not (ids[0] & ids[2]) and not (ids[1] & ids[2])
    assert parts["train"]["ts"].max() < parts["valid"]["ts"].min()
    assert parts["valid"]["ts"].max() < parts["test"]["ts"].min()
    assert sum(len(p) for p in parts.values()) == 303


def test_split_is_independent_of_input_order():
    logs = _logs(40, 2)
    a = split_by_time(logs, SplitConfig())
    b = split_by_time(logs.sample(frac=1.0, random_state=5), SplitConfig())
    for k in a:
        assert sorted(a[k]["impression_id"]) == sorted(b[k]["impression_id"])


def test_empty_logs_are_a_clear_error():
    with pytest.raises(ValueError, match="empty"):
        split_by_time(_logs(0), SplitConfig())


@pytest.mark.parametrize(
    "section, message",
    [
        ({"train": 0.7, "valid": 0.2, "test": 0.2}, "must be 1"),
        ({"train": 1.2}, r"split\.train: expected a fraction"),
        ({"trian": 0.7}, r"split\.trian: unknown key"),
        ({"train": "0.7"}, r"split\.train: expected a number"),
    ],
)
def test_bad_split_params_name_the_field(section, message):
    with pytest.raises(ConfigError, match=message):
        from_mapping(SplitConfig, section, "split")
