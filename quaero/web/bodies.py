"""The JSON request bodies of the API, as typed models.

A model both checks a body and describes it: a view reads its body with ``web.http.read_model`` (an
unknown key, a wrong type or a value out of bounds is a 400 naming the field), and ``web.schemas`` turns
:data:`BODIES` into the OpenAPI document's ``components/schemas``, which the views' YAML refers to by
``$ref``. The models are strict: in JSON a number is not text and ``1`` is not ``true``, so what the
document calls invalid is refused rather than coerced.

A job definition sent as JSON is not read here: it goes through the definitions module like YAML does,
for errors with line and column and for each step's plugin options; its model describes it all the same.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from quaero.stores.definitions import JobDefinition

MAX_ID = 200  # the longest auth id the credential store keeps
MAX_URL = 2000  # the longest base URL kept


class CredentialsInput(BaseModel):
    """The cookies and headers a crawl sends for an auth id; they replace what the id held."""

    model_config = ConfigDict(extra="forbid", strict=True)

    id: str = Field(min_length=1, max_length=MAX_ID, description="the auth id definitions refer to as `auth_id`")
    # Optional in the model only so that a body without it gets the store's message, which says what to give.
    base_url: str | None = Field(None, max_length=MAX_URL,
                                 description="required: the site they are for, such as https://intranet.example.com/; "
                                             "they are sent only to URLs of its scheme, host and port under its path")
    cookies: dict[str, str] | None = Field(None, description="cookie names to values; null for none")
    headers: dict[str, str] | None = Field(None, description="request header names to values; null for none")


USER_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@-]*$"
Role = Literal["admin", "viewer"]


class UserInput(BaseModel):
    """A new account."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=64, pattern=USER_NAME,
                      description="letters, digits and . _ @ -, starting with a letter or digit")
    role: Role = Field(description="admin: everything; viewer: reads everything, changes nothing")
    password: str = Field(min_length=8, max_length=1024, description="8 to 1024 characters")


class UserUpdate(BaseModel):
    """What changes in an account; a new password signs the user out everywhere."""

    model_config = ConfigDict(extra="forbid", strict=True)

    role: Role | None = Field(None, description="the new role; null or absent to keep it")
    password: str | None = Field(None, min_length=8, max_length=1024,
                                 description="the new password; null or absent to keep it")


class TokenInput(BaseModel):
    """A new API token for a user's scripts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field("token", min_length=1, max_length=100, description="what the token is for, to tell it apart")


JobStatus = Literal["pending", "running", "completed", "failed", "cancelled"]


class BulkFilter(BaseModel):
    """Which jobs a bulk action takes: the filters of ``GET /api/jobs`` (every job when empty)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    status: JobStatus | None = Field(None, description="only jobs in this status")
    type: str | None = Field(None, max_length=200, description="parent for executions, step, or a worker type")
    parent_id: str | None = Field(None, max_length=200, description="only the children of this job")
    definition_id: str | None = Field(None, max_length=200, description="only the jobs of this definition's runs")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"has an unknown key {unknown[0]!r}; the filter takes: {', '.join(cls.model_fields)}")
        return data


class BulkInput(BaseModel):
    """A bulk action over every job a filter matches, or only a count of them (``dry_run``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    action: Literal["cancel", "delete", "rerun"] = Field(
        description="cancel: unfinished jobs and their descendants; delete: finished jobs with their descendants "
                    "and logs; rerun: executions run afresh (once per definition), steps' failed and cancelled "
                    "children and failed or cancelled jobs run again")
    filter: BulkFilter = Field(default_factory=BulkFilter, description="which jobs")
    dry_run: bool = Field(False, description="true: only count the matching jobs and list the first 100")
    confirm_count: int | None = Field(None, ge=0, le=10_000_000,
                                      description="the dry run's count: required above 10,000 jobs; when given, "
                                                  "the action is refused (409) if the filter now matches another count")


class RerunFailedInput(BaseModel):
    """What a re-run of failed children takes along."""

    model_config = ConfigDict(extra="forbid", strict=True)

    include_cancelled: bool = Field(False, description="also the cancelled children")


#: Every body's model by its name under ``components/schemas``.
BODIES: dict[str, type[BaseModel]] = {
    "CredentialsInput": CredentialsInput,
    "DefinitionInput": JobDefinition,
    "UserInput": UserInput,
    "UserUpdate": UserUpdate,
    "TokenInput": TokenInput,
    "BulkInput": BulkInput,
    "RerunFailedInput": RerunFailedInput,
}
