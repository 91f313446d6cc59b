"""The API's request and response bodies: separate from the domain types, so the wire
format changes only on purpose (and the OpenAPI schema says what it is)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

_MAX_IDS = 10_000


class Strict(BaseModel):
    """Request bodies refuse unknown fields: a misspelt option is an error, not ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    type: str
    message: str
    column: int | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- auth ------------------------------------------------------------------------------

class LoginRequest(Strict):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class RoleOut(BaseModel):
    role: str
    scope_kind: str
    scope_name: str
    slice: str | None = None


class UserOut(BaseModel):
    id: str
    username: str
    roles: list[RoleOut] = []


class LoginResponse(BaseModel):
    user: UserOut
    csrf_token: str


# -- datasets --------------------------------------------------------------------------

class DatasetOut(BaseModel):
    name: str
    version: str
    samples: int
    labels: int
    project: str | None = None
    sliced: bool = False


class VersionOut(BaseModel):
    id: str
    parents: list[str]
    author: str
    message: str
    created_at: str
    refs: list[str] = []
    summary: dict[str, Any] = {}


class LabelOut(BaseModel):
    id: str
    class_name: str
    kind: str
    x: float | None = None
    y: float | None = None
    w: float | None = None
    h: float | None = None
    polygon: list[list[float]] | None = None
    mask: dict[str, Any] | None = None
    attributes: dict[str, Any] = {}
    score: float | None = None
    source: str | None = None


class SampleOut(BaseModel):
    id: str
    key: str
    content_hash: str
    width: int
    height: int
    split: str | None = None
    tags: list[str] = []
    metadata: dict[str, Any] = {}
    labels: list[LabelOut] = []
    thumbnail: str
    image: str


class SamplesPage(BaseModel):
    dataset: str
    version: str
    samples: list[SampleOut]
    next_offset: int | None


class SampleDetail(SampleOut):
    media_type: str | None = None
    size_bytes: int | None = None
    history: list[dict[str, Any]] = []


class TagRequest(Strict):
    ref: str = Field(default="main", max_length=200)
    sample_ids: list[str] = Field(min_length=1, max_length=_MAX_IDS)
    add: list[str] = Field(default=[], max_length=100)
    remove: list[str] = Field(default=[], max_length=100)


# -- exports and jobs ------------------------------------------------------------------

class ExportRequest(Strict):
    ref: str = Field(default="main", max_length=200)
    format: str = Field(max_length=50)
    filter: str | None = Field(default=None, max_length=10_000)


class JobOut(BaseModel):
    id: str
    kind: str
    status: str
    dataset: str | None
    params: dict[str, Any]
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


# -- admin -----------------------------------------------------------------------------

class CreateUserRequest(Strict):
    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1024)


class RoleBindingRequest(Strict):
    username: str = Field(min_length=1, max_length=200)
    role: str = Field(min_length=1, max_length=50)
    scope: str = Field(default="org", max_length=400)
    slice: str | None = Field(default=None, max_length=10_000)


class TokenRequest(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(default=["read"], min_length=1, max_length=10)
    expires_in_days: int | None = Field(default=90, ge=1, le=3650)
