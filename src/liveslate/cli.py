"""The `liveslate` command: one sub-command per pipeline stage (each DVC stage calls one).

Stage modules import their heavy dependencies inside the command function, so
`liveslate --help` stays fast and importing this module has no side effects.
"""

from __future__ import annotations

import typer

from liveslate.stages import (backtest, collect, deploy, evaluate, fetch_data, ingest, kg, kg_multimodal,
                              ope_benchmark, package, rollback, select, split, train, validate)

app = typer.Typer(
    name="liveslate",
    help="Slate recommendation for live-stream shopping: the pipeline stages and operations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("fetch-data")(fetch_data.main)
app.command("ingest")(ingest.main)
app.command("validate")(validate.main)
app.command("split")(split.main)
app.command("kg")(kg.main)
app.command("kg-multimodal")(kg_multimodal.main)
app.command("train")(train.main)
app.command("ope-benchmark")(ope_benchmark.main)
app.command("collect")(collect.main)
app.command("backtest")(backtest.main)
app.command("evaluate")(evaluate.main)
app.command("select")(select.main)
app.command("rollback")(rollback.main)
app.command("package")(package.main)
app.command("deploy")(deploy.main)

if __name__ == "__main__":
    app()
