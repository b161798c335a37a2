"""Request bodies of the OpenAI-compatible API. Unknown OpenAI fields pass through."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hanchang.core.errors import HanchangError
from hanchang.core.grades import Grade
from hanchang.http.types import GradeIn, OptionalGradeIn


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    name: str | None = None


class Attachment(BaseModel):
    """A document the user attached, as text, with its own grade (default O)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=300)
    content: str = Field(max_length=2_000_000)
    grade: GradeIn = Grade.OPEN


MAX_CHOICES = 8  # `n`: each choice is a whole answer from the model, so the bound is its cost


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool | None = None


class _HanchangExtensions(BaseModel):
    """Hanchang's own optional fields, the same on every OpenAI door: the grade the caller declares
    for the request's data (default O, 공개), and grounding on knowledge bases (names or ids), in
    the versions in force on `as_of`."""

    data_grade: OptionalGradeIn = None
    collections: list[str | int] = Field(default_factory=list, max_length=20)
    as_of: date | None = None


class ChatCompletionRequest(_HanchangExtensions):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, min_length=1, max_length=200)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1, le=131_072)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=131_072)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = None
    stream_options: StreamOptions | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)  # Hanchang: each with its grade

    def refuse_non_text_parts(self) -> None:
        """Every model here reads text: an image, audio or file part is a clear 400 naming it,
        never forwarded silently (as on /v1/responses)."""
        for i, message in enumerate(self.messages):
            if not isinstance(message.content, list):
                continue
            for j, part in enumerate(message.content):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                if kind not in ("text", "refusal"):
                    raise HanchangError(
                        f"messages[{i}].content[{j}]의 '{kind}' 입력은 지원하지 않습니다. 한창의 모델은 글만 읽습니다. "
                        "문서는 지식 베이스에 올리거나 글로 붙여 넣어 주세요.",
                        f"messages[{i}].content[{j}]: '{kind}' parts are not supported; the models here read "
                        "text only. Upload documents to a knowledge base or send their text.",
                        param=f"messages[{i}].content[{j}]")

    @property
    def include_usage(self) -> bool:
        """A stream ends with a usage-only chunk only when the client asked for it, as OpenAI's does."""
        return bool(self.stream_options and self.stream_options.include_usage)

    def upstream_body(self) -> dict[str, Any]:
        """What goes on to the model: the OpenAI fields as sent (max_completion_tokens stays itself;
        the gateway asks the upstream for usage on its own), without Hanchang's extensions."""
        return self.model_dump(
            exclude_none=True,
            exclude={"data_grade", "stream_options", "attachments", "collections", "as_of"},
        )


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, min_length=1, max_length=200)
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] | None = None
    data_grade: OptionalGradeIn = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        if value == [] or value == "":
            raise ValueError("input must not be empty")
        return value


class CompletionRequest(_HanchangExtensions):
    """The legacy `/v1/completions` body. Hanchang's models are chat models: the prompt is sent as
    one user message, and the answer comes back as `text_completion`."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, min_length=1, max_length=200)
    prompt: str | list[str] | list[int] | list[list[int]]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=131_072)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    n: int | None = Field(default=None, ge=1, le=MAX_CHOICES)
    stop: str | list[str] | None = None
    echo: bool = False
    suffix: str | None = None
    logprobs: int | None = None
    best_of: int | None = Field(default=None, ge=1, le=MAX_CHOICES)

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


class ResponsesRequest(_HanchangExtensions):
    """The `/v1/responses` body (text and message input, function tools, stored responses)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(default=None, min_length=1, max_length=200)
    input: str | list[dict[str, Any]] = Field(min_length=1)
    instructions: str | None = Field(default=None, max_length=200_000)
    previous_response_id: str | None = Field(default=None, max_length=100)
    stream: bool = False
    store: bool = True
    tools: list[dict[str, Any]] = Field(default_factory=list, max_length=128)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=131_072)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    text: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    user: str | None = Field(default=None, max_length=200)
