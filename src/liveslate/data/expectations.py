"""Great Expectations suites for canonical logs and the catalogue (DESIGN.md data contracts).

Two kinds of expectation live in a suite:
- *table-level* ones (a column exists, its dtype, the row count) judge the whole table:
  when one fails the stage fails, because no row can be trusted;
- *row-level* ones (GX map expectations) judge each row; the rows they flag are rejected
  with the expectation's key as the reason and the rest go on.

Every suite is plain GX 1.x expectations plus one custom batch expectation,
``ExpectColumnDtypeToBeIn``: GX's own type expectations compare numpy types and do not
know pandas extension dtypes (``string``, ``Int32``, ``datetime64[us, UTC]``), which is
exactly what the canonical tables hold under pandas 3.

Some checks compare a row with something outside its own columns (the catalogue's room of
its item, the bounds of its date partition). For those, ``prepare_logs`` adds *derived*
columns to the frame GX sees (``catalog_room_id``, ``partition_start``, ``partition_end``)
so the check is a vectorised column-pair expectation; derived columns never reach the
stage's outputs.

Date partitions: a source that is partitioned by day (served logs under
``data/served/<YYYY-MM-DD>/``) writes the day into a ``partition_date`` column
(``YYYY-MM-DD`` string, UTC day); rows with a partition must have ``ts`` inside
[day 00:00 UTC, next day 00:00 UTC). Rows without one (OBD, users' exports) are not checked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar, Dict, Optional

import numpy as np
import pandas as pd
import great_expectations.expectations as gxe
from great_expectations.compatibility.pydantic import Field, StrictStr
from great_expectations.expectations.expectation import BatchExpectation

from liveslate.config import ValidateConfig
from liveslate.schema import (
    CATALOG_REQUIRED,
    LOG_REQUIRED,
    category_columns,
    context_columns,
    numeric_columns,
)

PARTITION_COLUMN = "partition_date"
CATALOG_ROOM_COLUMN = "catalog_room_id"
PARTITION_START_COLUMN = "partition_start"
PARTITION_END_COLUMN = "partition_end"
CANDIDATES_CHECK_COLUMN = "candidates_check"

# Accepted dtypes, as written by ``str(series.dtype)``; ``*`` matches any text (the unit).
# pandas 3 reads text as "str" (NaN-backed) and the canonical tables use "string" (NA-backed).
STRING_DTYPES = ("string", "str")
INTEGER_DTYPES = ("int8", "int16", "int32", "int64", "Int8", "Int16", "Int32", "Int64")
FLOAT_DTYPES = ("float32", "float64", "Float32", "Float64")
UTC_TIMESTAMP_DTYPES = ("datetime64[*, UTC]",)
NAIVE_TIMESTAMP_DTYPES = ("datetime64[s]", "datetime64[ms]", "datetime64[us]", "datetime64[ns]")

LOG_COLUMN_DTYPES: dict[str, tuple[str, ...]] = {
    "impression_id": STRING_DTYPES,
    "session_id": STRING_DTYPES,
    "step": INTEGER_DTYPES,
    "ts": UTC_TIMESTAMP_DTYPES,
    "room_id": STRING_DTYPES,
    "item_id": STRING_DTYPES,
    "position": INTEGER_DTYPES,
    "click": INTEGER_DTYPES,
    "reward": FLOAT_DTYPES,
    "propensity": FLOAT_DTYPES,
    "policy": STRING_DTYPES,
    "slate_probability": FLOAT_DTYPES,
    "candidates": ("object",),
}
CONTEXT_DTYPES = STRING_DTYPES + INTEGER_DTYPES + FLOAT_DTYPES
CATALOG_COLUMN_DTYPES: dict[str, tuple[str, ...]] = {
    "item_id": STRING_DTYPES,
    "room_id": STRING_DTYPES,
    "first_seen": NAIVE_TIMESTAMP_DTYPES,
    "text": STRING_DTYPES,
    "image": STRING_DTYPES,
}
PARTITION_DATE_REGEX = r"^\d{4}-\d{2}-\d{2}$"


def dtype_matches(dtype: Any, patterns: tuple[str, ...] | list[str]) -> bool:
    """True when ``str(dtype)`` matches one of ``patterns``, where ``*`` stands for any text.

    ``datetime64[*, UTC]`` accepts every unit of UTC timestamps (pandas 3 reads ``us``).
    """
    name = str(dtype)
    return any(re.fullmatch(re.escape(pattern).replace(r"\*", ".*"), name) for pattern in patterns)


class ExpectColumnDtypeToBeIn(BatchExpectation):
    """Expect a column's pandas dtype, as ``str(dtype)``, to match one of ``dtypes`` (glob patterns).

    Table-level: judges the column as a whole. A missing column fails with observed value
    ``"missing"``. Used instead of GX's type expectations, which compare numpy types and
    reject pandas extension dtypes such as ``Int32`` and ``datetime64[us, UTC]``.
    """

    column: StrictStr = Field(min_length=1)
    dtypes: list[str] = Field(min_items=1)

    metric_dependencies = ("table.column_types",)
    domain_keys = ("batch_id",)
    success_keys = ("column", "dtypes")
    args_keys = ("column", "dtypes")
    library_metadata: ClassVar[Dict[str, Any]] = {"maturity": "experimental", "tags": ["schema"],
                                                   "contributors": ["liveslate"]}

    def _validate(self, metrics: Dict, runtime_configuration: Optional[dict] = None,
                  execution_engine: Any = None) -> Dict[str, Any]:
        column = self._get_success_kwarg("column")
        patterns = self._get_success_kwarg("dtypes")
        found = [entry["type"] for entry in metrics["table.column_types"] if entry["name"] == column]
        if not found:
            return {"success": False, "result": {"observed_value": "missing"}}
        return {"success": dtype_matches(found[0], patterns), "result": {"observed_value": str(found[0])}}


@dataclass(frozen=True)
class SuiteSpec:
    """The expectations of one table and the human sentence for each (same order)."""

    name: str
    expectations: tuple[Any, ...]


def prepare_logs(logs: pd.DataFrame, catalog: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``logs`` with a RangeIndex (GX reports row numbers) and the derived columns.

    ``catalog_room_id``: the catalogue's room of the row's item (null for an unknown item);
    ``partition_start`` / ``partition_end``: the UTC bounds of the row's ``partition_date``
    (null without one, or when it is not a YYYY-MM-DD day); ``candidates_check``: "ok" or what is
    wrong with the candidate list the row's impression logged (null when it logged none).
    """
    frame = logs.reset_index(drop=True).copy()
    if "item_id" in frame.columns and {"item_id", "room_id"} <= set(catalog.columns):
        rooms = catalog.drop_duplicates("item_id").set_index("item_id")["room_id"]
        frame[CATALOG_ROOM_COLUMN] = frame["item_id"].map(rooms).astype("string")
    else:
        frame[CATALOG_ROOM_COLUMN] = pd.Series(pd.NA, index=frame.index, dtype="string")
    if PARTITION_COLUMN in frame.columns:
        day = frame[PARTITION_COLUMN].astype("string")
        start = pd.to_datetime(day, format="%Y-%m-%d", errors="coerce", utc=True)
        frame[PARTITION_START_COLUMN] = start
        frame[PARTITION_END_COLUMN] = start + pd.Timedelta(days=1)
    if "candidates" in frame.columns and "item_id" in frame.columns:
        items = set(catalog["item_id"].dropna().astype(str)) if "item_id" in catalog.columns else set()
        frame[CANDIDATES_CHECK_COLUMN] = candidates_check(frame, items)
    return frame


def _is_list(value: Any) -> bool:
    return isinstance(value, (list, tuple)) or (hasattr(value, "ndim") and getattr(value, "ndim") == 1)


def _list_problem(value: Any, item: str, catalog_items: set[str]) -> str:
    ids = list(value)
    if not all(isinstance(v, str) for v in ids):
        return "not a list of item id strings"
    if len(set(ids)) != len(ids):
        repeated = sorted({v for v in ids if ids.count(v) > 1})
        return f"lists {repeated[0]!r} more than once"
    unknown = [v for v in ids if v not in catalog_items]
    if unknown:
        return f"lists {unknown[0]!r}, not in the catalogue" + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else "")
    if item not in set(ids):
        return f"does not hold the shown item {item!r}"
    return "ok"


def candidates_check(frame: pd.DataFrame, catalog_items: set[str]) -> pd.Series:
    """[rows] "ok" / a problem of the row's logged candidate list / null when its impression logged none.

    Consumers (OPE, training) take an impression's candidates from its lowest-position row
    and need every shown item among them; a repeated id would be shown twice, an id outside
    the catalogue has no item index. A row without its own list is checked against its
    impression's list; a non-list value (a string, a number) is a problem of its own row.
    """
    out = pd.Series(pd.NA, index=frame.index, dtype="string")
    values = frame["candidates"].to_numpy(dtype=object)
    given = np.array([v is not None and not (not _is_list(v) and pd.isna(v)) for v in values], dtype=bool)
    if not given.any():
        return out
    items = frame["item_id"].astype("string").fillna("").to_numpy(dtype=object)
    for row in np.flatnonzero(given):
        value = values[row]
        out.iloc[row] = _list_problem(value, items[row], catalog_items) if _is_list(value) else "not a list"
    # Rows without a list of their own: the list of their impression's lowest-position row.
    if {"impression_id", "position"} <= set(frame.columns) and (~given).any():
        heads = frame.assign(_row=np.arange(len(frame)))[given].sort_values(["impression_id", "position"])
        heads = heads.drop_duplicates("impression_id")
        lists = {imp: values[r] for imp, r in zip(heads["impression_id"], heads["_row"]) if _is_list(values[r])}
        impressions = frame["impression_id"].to_numpy(dtype=object)
        for row in np.flatnonzero(~given):
            listed = lists.get(impressions[row])
            if listed is not None:
                out.iloc[row] = "ok" if items[row] in set(listed) else \
                    f"does not hold the shown item {items[row]!r} (the impression's list)"
    return out


def _exists(column: str) -> Any:
    return gxe.ExpectColumnToExist(column=column, description=f"column {column} is present")


def _dtype(column: str, patterns: tuple[str, ...]) -> Any:
    shown = ", ".join(patterns)
    return ExpectColumnDtypeToBeIn(column=column, dtypes=list(patterns), description=f"{column} has dtype in {{{shown}}}")


def _not_null(column: str) -> Any:
    return gxe.ExpectColumnValuesToNotBeNull(column=column, description=f"{column} is not null")


def log_expectations(config: ValidateConfig, frame: pd.DataFrame, catalog_items: list[str]) -> SuiteSpec:
    """The logs suite for ``frame`` (its ctx_* columns and partition column shape the suite).

    ``catalog_items`` are the item ids of the accepted catalogue; ``frame`` must have been
    through ``prepare_logs`` so the derived columns exist.
    """
    expectations: list[Any] = [gxe.ExpectTableRowCountToBeBetween(
        min_value=config.min_rows, description=f"at least {config.min_rows} row(s)")]
    for column, patterns in LOG_COLUMN_DTYPES.items():
        expectations += [_exists(column), _dtype(column, patterns)]
    ctx = context_columns(frame)
    expectations += [_dtype(column, CONTEXT_DTYPES) for column in ctx]
    expectations += [_not_null(column) for column in LOG_REQUIRED]
    expectations += [
        gxe.ExpectColumnValuesToBeBetween(column="propensity", min_value=0.0, max_value=1.0, strict_min=True,
                                          description="propensity in (0, 1]"),
        gxe.ExpectColumnValuesToBeBetween(column="slate_probability", min_value=0.0, max_value=1.0, strict_min=True,
                                          description="slate_probability in (0, 1] where present"),
        gxe.ExpectColumnValuesToBeInSet(column="click", value_set=[0, 1], description="click in {0, 1}"),
        gxe.ExpectColumnValuesToBeBetween(column="reward", min_value=0.0, max_value=config.reward_max,
                                          description=f"reward in [0, {config.reward_max:g}]"),
        gxe.ExpectColumnValuesToBeBetween(column="position", min_value=0, max_value=config.slate_size - 1,
                                          description=f"position in [0, {config.slate_size}) (0-based slot)"),
        gxe.ExpectColumnValuesToBeInSet(column="item_id", value_set=sorted(catalog_items),
                                        description="item_id is in the catalogue"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="room_id", column_B=CATALOG_ROOM_COLUMN,
                                            ignore_row_if="either_value_is_missing",
                                            description="room_id is the catalogue room of item_id"),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=["impression_id", "position"],
                                            description="(impression_id, position) is unique"),
    ]
    if CANDIDATES_CHECK_COLUMN in frame.columns:
        expectations.append(gxe.ExpectColumnValuesToBeInSet(
            column=CANDIDATES_CHECK_COLUMN, value_set=["ok"],
            description="candidates, where logged, lists distinct catalogue item ids holding the shown item"))
    # Numeric context must be finite and plausible; a missing value (NaN) is allowed, it
    # means the feature was not observed, and the policies' encoders handle it.
    for column in (c for c in ctx if pd.api.types.is_numeric_dtype(frame[c].dtype)):
        expectations.append(gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=-config.context_abs_max, max_value=config.context_abs_max,
            description=f"{column} finite, |value| <= {config.context_abs_max:g} (numeric context only)"))
    if PARTITION_COLUMN in frame.columns:
        expectations += [
            gxe.ExpectColumnValuesToMatchRegex(column=PARTITION_COLUMN, regex=PARTITION_DATE_REGEX,
                                               description=f"{PARTITION_COLUMN} is a YYYY-MM-DD day where present"),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A="ts", column_B=PARTITION_START_COLUMN, or_equal=True, ignore_row_if="either_value_is_missing",
                description=f"ts on or after 00:00 UTC of {PARTITION_COLUMN}"),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=PARTITION_END_COLUMN, column_B="ts", or_equal=False, ignore_row_if="either_value_is_missing",
                description=f"ts before 00:00 UTC of the day after {PARTITION_COLUMN}"),
        ]
    return SuiteSpec("logs", tuple(expectations))


def catalog_expectations(config: ValidateConfig, frame: pd.DataFrame) -> SuiteSpec:
    """The catalogue suite for ``frame``: one row per item, its room and attributes."""
    expectations: list[Any] = [gxe.ExpectTableRowCountToBeBetween(min_value=1, description="at least 1 item")]
    for column in CATALOG_REQUIRED:
        expectations += [_exists(column), _dtype(column, CATALOG_COLUMN_DTYPES[column])]
    for column in ("text", "image"):
        if column in frame.columns:
            expectations.append(_dtype(column, CATALOG_COLUMN_DTYPES[column]))
    expectations += [_dtype(column, STRING_DTYPES) for column in category_columns(frame)]
    expectations += [_dtype(column, INTEGER_DTYPES + FLOAT_DTYPES) for column in numeric_columns(frame)]
    expectations += [_not_null(column) for column in CATALOG_REQUIRED]
    expectations.append(gxe.ExpectColumnValuesToBeUnique(column="item_id", description="item_id is unique"))
    for column in (c for c in numeric_columns(frame) if pd.api.types.is_numeric_dtype(frame[c].dtype)):
        bound = config.catalog_numeric_abs_max
        expectations.append(gxe.ExpectColumnValuesToBeBetween(
            column=column, min_value=-bound, max_value=bound,
            description=f"{column} finite, |value| <= {bound:g}"))
    return SuiteSpec("catalog", tuple(expectations))
