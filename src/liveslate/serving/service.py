"""The BentoML 1.4 service: the champion answers /recommend and records /feedback.

Endpoints (all bound to 127.0.0.1 by `bentoml serve ... --host 127.0.0.1`):
- ``POST /recommend``  RecommendRequest → RecommendResponse (serving.requests)
- ``POST /feedback``   FeedbackRequest → FeedbackResponse
- ``GET /metadata``    policy, registry version, data version, item count, serving settings
- ``GET /healthz`` / ``/livez`` (the process answers), ``GET /readyz`` (200 only once the
  model is loaded and the spool index rebuilt; BentoML asks ``__is_ready__``)

The model is loaded once per worker in ``__init__`` from the BentoML model named by the
Bento's build argument ``model_tag`` (never ``:latest``). Bad requests get 4xx naming the
field: schema errors come from the pydantic request models (400, ``detail[].loc``), the
recommender's checks are raised here as the same kind of error (400) or with their own
status (404 unknown impression, 410 closed day); bodies above ``max_request_bytes`` get
413 from the middleware. Anything else is a real fault: 500.
"""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import bentoml
from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from liveslate.serving.arguments import ServiceArguments
from liveslate.serving.middleware import BodySizeLimit
from liveslate.serving.requests import (
    FeedbackRequest,
    FeedbackResponse,
    Metadata,
    RecommendRequest,
    RecommendResponse,
    RequestError,
)

# Read at import for the worker and thread counts; BentoML sets the Bento's arguments before
# it imports the service (``bentoml serve <bento>``); a bare import gets the defaults.
_IMPORT_ARGUMENTS = bentoml.use_arguments(ServiceArguments)


def as_http_error(error: RequestError, title: str) -> Exception:
    """400 → a pydantic ValidationError (BentoML's own 400 body, with ``loc``); other 4xx → BentoMLException."""
    if error.status == HTTPStatus.BAD_REQUEST:
        detail = InitErrorDetails(type=PydanticCustomError("invalid_value", "{message}", {"message": error.message}),
                                  loc=tuple(error.field.split(".")), input=error.value)
        return ValidationError.from_exception_data(title, [detail])
    return bentoml.exceptions.BentoMLException(str(error), error_code=HTTPStatus(error.status))


@bentoml.service(
    name="liveslate",
    workers=_IMPORT_ARGUMENTS.workers,
    threads=_IMPORT_ARGUMENTS.threads,
    traffic={"timeout": 30},
)
class LiveslateService:
    """One worker: the loaded champion, its spool writer and the index of open days' impressions."""

    def __init__(self) -> None:
        import torch

        from liveslate.serving.bento_model import load_bundle
        from liveslate.serving.recommender import Recommender, ServingSettings

        self._ready = False
        arguments = bentoml.use_arguments(ServiceArguments)
        if not arguments.model_tag:
            raise RuntimeError("the Bento has no model_tag argument; build it with `liveslate package`")
        torch.set_num_threads(arguments.torch_threads)
        model = bentoml.models.get(arguments.model_tag)
        self.arguments = arguments
        self.bundle = load_bundle(Path(model.path))
        settings = ServingSettings(exploration=arguments.exploration(),
                                   unknown_candidates=arguments.unknown_candidates, max_k=arguments.max_k,
                                   reward_max=arguments.reward_max,
                                   attribution_window=arguments.attribution_window(),
                                   model_tag=str(model.tag))
        self.recommender = Recommender(self.bundle, arguments.spool(), settings)
        self.recommender.load_index()
        self._ready = True

    def __is_ready__(self) -> bool:
        return self._ready

    @bentoml.api
    def recommend(self, request: RecommendRequest, /) -> RecommendResponse:
        """Choose a slate of k items for one viewer; it is logged with its propensities before the answer."""
        try:
            return self.recommender.recommend(request)
        except RequestError as error:
            raise as_http_error(error, "RecommendRequest") from None

    @bentoml.api
    def feedback(self, request: FeedbackRequest, /) -> FeedbackResponse:
        """Record a click (or a reward) on an item of a served slate."""
        try:
            return self.recommender.feedback(request)
        except RequestError as error:
            raise as_http_error(error, "FeedbackRequest") from None

    def metadata(self) -> Metadata:
        bundle, settings = self.bundle, self.recommender.settings
        explore = settings.exploration
        return Metadata(
            policy=bundle.name, kind=str(bundle.info.get("kind", "")),
            registered_version=str(bundle.info["registered_version"]), model_tag=settings.model_tag,
            data_version=str(bundle.info.get("data_version", "unknown")),
            git_commit=str(bundle.info.get("git_commit", "unknown")), items=len(bundle.index),
            rooms={room: int(items.size) for room, items in bundle.rooms.items()},
            context_features=list(bundle.context_features),
            exploration={"mode": explore.mode, "epsilon": explore.epsilon, "temperature": explore.temperature},
            unknown_candidates=settings.unknown_candidates, max_k=settings.max_k,
            impressions_indexed=len(self.recommender.index))


async def _metadata(_: Request) -> JSONResponse:
    """GET /metadata (a plain Starlette route: BentoML APIs are POST)."""
    service = bentoml.get_current_service()
    if service is None or not getattr(service, "_ready", False):
        return JSONResponse({"error": "the model is not loaded yet"}, status_code=503)
    return JSONResponse(service.metadata().model_dump())


# BentoML mounts apps passively: this one answers only the paths of its own routes.
LiveslateService.mount_asgi_app(Starlette(routes=[Route("/metadata", _metadata, methods=["GET"])]), path="/")
LiveslateService.add_asgi_middleware(BodySizeLimit,
                                     max_bytes=lambda: bentoml.use_arguments(ServiceArguments).max_request_bytes)
