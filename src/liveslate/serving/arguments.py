"""Build arguments of the Bento: how the service serves, fixed when `liveslate package` builds it.

They travel inside the Bento (``bentoml.use_arguments``; BentoML restores them when it
serves the Bento), so the served behaviour is part of what was built and a rollback to an
older Bento serves it exactly as before. ``LIVESLATE_SPOOL_DIR`` overrides the spool
folder at serving time (a container mounts its own volume there).
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from liveslate.policies.base import Exploration

SPOOL_ENV = "LIVESLATE_SPOOL_DIR"


class ServiceArguments(BaseModel):
    """The arguments `liveslate package` passes to the Bento build (see ``from_params``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    model_tag: str = ""
    spool_dir: str = ""
    exploration_mode: Literal["none", "epsilon", "plackett_luce"] = "epsilon"
    epsilon: float = Field(default=0.1, ge=0.0, le=1.0)
    temperature: float = Field(default=1.0, gt=0.0)
    unknown_candidates: Literal["drop", "reject"] = "drop"
    max_request_bytes: int = Field(default=1_048_576, ge=1024)
    max_k: int = Field(default=3, ge=1)
    reward_max: float = Field(default=1.0, gt=0.0)
    attribution_window_minutes: int = Field(default=30, ge=0)
    workers: int = Field(default=1, ge=1)
    threads: int = Field(default=4, ge=1)
    torch_threads: int = Field(default=1, ge=1)

    @classmethod
    def from_params(cls, params: Any, model_tag: str, spool_dir: Path) -> "ServiceArguments":
        """From the typed params: serving section, evaluate.exploration, validate.reward_max, spool."""
        serving, exploration = params.serving, params.evaluate.exploration
        return cls(model_tag=model_tag, spool_dir=str(Path(spool_dir).resolve()),
                   exploration_mode=exploration.mode, epsilon=exploration.epsilon,
                   temperature=exploration.temperature, unknown_candidates=serving.unknown_candidates,
                   max_request_bytes=serving.max_request_bytes, max_k=serving.max_k,
                   reward_max=params.validate.reward_max,
                   attribution_window_minutes=params.spool.attribution_window_minutes,
                   workers=serving.workers, threads=serving.threads, torch_threads=serving.torch_threads)

    def exploration(self) -> Exploration:
        return Exploration(mode=self.exploration_mode, epsilon=self.epsilon, temperature=self.temperature)

    def attribution_window(self) -> dt.timedelta:
        return dt.timedelta(minutes=self.attribution_window_minutes)

    def spool(self) -> Path:
        """The spool folder: ``LIVESLATE_SPOOL_DIR`` when set, else the one recorded at build time."""
        chosen = os.environ.get(SPOOL_ENV) or self.spool_dir
        if not chosen:
            raise RuntimeError(f"no spool folder: the Bento has no spool_dir argument and {SPOOL_ENV} is unset")
        return Path(chosen)
