"""Typed, validated requests and responses of the service, and the error a refused request raises.

Field types are strict: ``"k": "3"`` is a wrong type, not a 3. Unknown fields are refused
(a typo such as ``candidate`` would otherwise silently mean "the whole room"). BentoML
answers a request that fails these models with 400 and each error's ``loc`` (the field).
What the models cannot know (the Bento's rooms and items, the policy's features, the
spool) is checked by the recommender, which raises :class:`RequestError`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

Probability = Annotated[float, Field(strict=True, ge=0.0, le=1.0, allow_inf_nan=False)]
PositiveFloat = Annotated[float, Field(strict=True, gt=0.0, allow_inf_nan=False)]
ContextValue = StrictStr | StrictInt | Annotated[float, Field(strict=True, allow_inf_nan=False)] | None


class RequestError(Exception):
    """A request the service refuses: HTTP ``status`` (4xx), the dotted ``field`` at fault, a message.

    The message reads well after the field name: ``f"{field}: {message}"``.
    """

    def __init__(self, field: str, message: str, status: int = 400, value: object = None) -> None:
        if not 400 <= status < 500:
            raise ValueError(f"RequestError status must be 4xx, got {status}")
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status
        self.value = value


class ExploreSpec(BaseModel):
    """How the slate is drawn; omitted fields take the served default (``evaluate.exploration``)."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["none", "epsilon", "plackett_luce"]
    epsilon: Probability | None = None
    temperature: PositiveFloat | None = None


class RecommendRequest(BaseModel):
    """POST /recommend.

    context: the viewer's ``ctx_*`` features (strings for categorical features, numbers
    for numeric ones, null = unknown); every feature the policy was trained with must be
    present. candidates: item ids to choose from (default: every item of the room);
    duplicates are removed, ids outside the room are dropped or rejected (serving config).
    """

    model_config = ConfigDict(extra="forbid")

    room_id: StrictStr = Field(min_length=1)
    context: dict[StrictStr, ContextValue]
    k: StrictInt = Field(gt=0, description="slate size: 1 <= k <= serving.max_k and <= distinct candidates")
    candidates: list[StrictStr] | None = None
    explore: ExploreSpec | None = None
    session_id: StrictStr | None = Field(default=None, min_length=1, max_length=256)
    step: StrictInt | None = Field(default=None, ge=0, description="order of the impression in its session")
    viewer_id: StrictStr | None = Field(default=None, min_length=1, max_length=256)


class FeedbackRequest(BaseModel):
    """POST /feedback: what the viewer did with one item of a served slate.

    click: 0/1; reward: a non-negative value (purchase); one of them is required. Without
    a reward, reward = click; without a click, click = 1 when reward > 0.
    """

    model_config = ConfigDict(extra="forbid")

    impression_id: StrictStr = Field(min_length=1)
    item_id: StrictStr = Field(min_length=1)
    click: Literal[0, 1] | None = None
    reward: Annotated[float, Field(strict=True, ge=0.0, allow_inf_nan=False)] | None = None

    @model_validator(mode="after")
    def _click_or_reward(self) -> "FeedbackRequest":
        if self.click is None and self.reward is None:
            raise ValueError("click or reward: at least one is required")
        return self


class SlateEntry(BaseModel):
    item_id: str
    position: int
    score: float
    propensity: float = Field(description="P(this item at this position | context) under the served exploration")


class RecommendResponse(BaseModel):
    impression_id: str
    policy: str = Field(description="name@v<registry version> of the serving policy")
    slate: list[SlateEntry]
    slate_probability: float = Field(description="probability of the whole ordered slate")
    dropped_candidates: list[str] = Field(description="requested candidate ids outside the room's items")


class FeedbackResponse(BaseModel):
    impression_id: str
    item_id: str
    position: int
    click: int
    reward: float


class Metadata(BaseModel):
    """GET /metadata: what this Bento serves."""

    policy: str
    kind: str
    registered_version: str
    model_tag: str
    data_version: str
    git_commit: str
    items: int
    rooms: dict[str, int]
    context_features: list[str]
    exploration: dict[str, float | str]
    unknown_candidates: str
    max_k: int
    impressions_indexed: int
