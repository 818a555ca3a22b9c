"""`liveslate collect`: move one closed day of served logs into data/served/<day>/ (run daily by Airflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(
    day: Annotated[str, typer.Option(help="The UTC day to collect, YYYY-MM-DD.")],
    params: ParamsOption = Path("params.yaml"),
    now: Annotated[Optional[str], typer.Option(
        help="Pretend the current time is this ISO timestamp (tests, backfills); default: the clock.")] = None,
) -> None:
    """Copy the spool folder of a closed day (day end + attribution window passed) into data/served/<day>/.

    Fails, copying nothing, when the day is not closed yet, has no spool folder, or holds no
    impression. Re-collecting an identical day changes nothing.
    """
    import datetime as dt

    from liveslate.loop.collect import CollectError, collect_day
    from liveslate.loop.spool import parse_day

    project = open_project(params)
    try:
        the_day = parse_day(day)
        try:
            clock = dt.datetime.fromisoformat(now) if now else dt.datetime.now(dt.timezone.utc)
        except ValueError as err:
            raise ValueError(f"--now {now!r}: expected an ISO timestamp with a time zone, "
                             "e.g. 2026-12-03T01:00:00+00:00") from err
        if clock.tzinfo is None:
            raise ValueError(f"--now {now!r}: expected a time zone, e.g. 2026-12-03T01:00:00+00:00")
        result = collect_day(
            spool=project.path(project.params.spool.directory),
            served_dir=project.data / "served",
            day=the_day,
            now=clock,
            attribution_window=dt.timedelta(minutes=project.params.spool.attribution_window_minutes),
        )
    except (CollectError, ValueError) as err:
        fail(str(err))
    state = "already collected, unchanged" if result.already_collected else "collected"
    say(f"collect {result.day}: {state}: {result.impressions} impressions, {result.feedback} feedback events "
        f"→ {result.target}")
