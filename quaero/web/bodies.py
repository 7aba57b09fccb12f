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

from pydantic import BaseModel, ConfigDict, Field

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


#: Every body's model by its name under ``components/schemas``.
BODIES: dict[str, type[BaseModel]] = {
    "CredentialsInput": CredentialsInput,
    "DefinitionInput": JobDefinition,
}
