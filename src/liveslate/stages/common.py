"""What every stage CLI shares: the ``--params`` option and resolved project paths.

Paths in params.yaml are relative to the directory holding the params file, so a
test can run a stage on a copy of the project in a temporary directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Sequence

import typer

from liveslate.config import ConfigError, Params, load_params

if TYPE_CHECKING:
    import pandas as pd

ParamsOption = Annotated[
    Path,
    typer.Option("--params", "-p", help="params.yaml to read; paths in it are relative to its directory."),
]


@dataclass(frozen=True)
class Project:
    """A loaded params file and the directories it names, resolved against its root."""

    root: Path
    params: Params

    @property
    def data(self) -> Path:
        return self.root / self.params.paths.data

    @property
    def artifacts(self) -> Path:
        return self.root / self.params.paths.artifacts

    @property
    def metrics(self) -> Path:
        return self.root / self.params.paths.metrics

    @property
    def reports(self) -> Path:
        return self.root / self.params.paths.reports

    @property
    def plots(self) -> Path:
        return self.root / self.params.paths.plots

    def path(self, relative: str | Path) -> Path:
        return self.root / relative


def open_project(params_path: Path) -> Project:
    """Load params or exit with the config error (exit code 2) instead of a traceback."""
    try:
        params = load_params(params_path)
    except ConfigError as err:
        fail(str(err), code=2)
    return Project(root=params_path.resolve().parent, params=params)


def read_input_parquet(path: Path, hint: str, required: Sequence[str] = ()) -> "pd.DataFrame":
    """Read a stage's Parquet input, or exit 1 with one line naming the file and what is wrong.

    ``hint`` says how the file is made (e.g. "run `liveslate split` first"); ``required``
    lists the columns the stage reads (a frame written by another version, or by hand,
    would otherwise fail later as a KeyError traceback).
    """
    import pandas as pd

    if not path.exists():
        fail(f"{path}: not found; {hint}")
    if not path.is_file():
        fail(f"{path}: not a file (expected a Parquet file; {hint})")
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        fail(f"{path}: not a readable Parquet file ({err}); {hint}")
    missing = [column for column in required if column not in frame.columns]
    if missing:
        fail(f"{path}: missing column(s) {missing} (has {list(frame.columns)}); {hint}")
    return frame


def fail(message: str, code: int = 1) -> "typer.Exit":
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def say(message: str) -> None:
    typer.echo(message)
