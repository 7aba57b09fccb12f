"""Pydantic's JSON Schema 2020-12 as OpenAPI 3.0 schema objects."""

from __future__ import annotations

from typing import Literal

import pytest
from openapi_spec_validator import validate
from pydantic import BaseModel, ConfigDict, Field

from quaero.web.schemas import component_schemas, openapi30


class Limits(BaseModel):
    """Nested, and nullable where it is used."""

    low: int = Field(0, ge=0)


class Everything(BaseModel):
    """A model with each construct that 2020-12 and 3.0 spell differently."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["only"] = "only"
    mode: Literal["a", "b"] | None = None
    ratio: float = Field(0.5, gt=0, lt=1, examples=[0.25])
    limits: Limits | None = None
    fallback: Limits = Field(default_factory=Limits, description="beside a $ref")
    either: int | str | None = None


def test_each_construct_is_spelled_the_openapi_30_way():
    schemas = component_schemas({"Everything": Everything})
    assert set(schemas) == {"Everything", "Limits"}
    properties = schemas["Everything"]["properties"]
    assert properties["kind"] == {"enum": ["only"], "type": "string", "default": "only"}
    assert properties["mode"] == {"enum": ["a", "b", None], "type": "string", "nullable": True, "default": None}
    assert properties["ratio"] == {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 1,
                                   "exclusiveMaximum": True, "example": 0.25, "default": 0.5}
    assert properties["limits"] == {"allOf": [{"$ref": "#/components/schemas/Limits"}], "nullable": True,
                                    "default": None}
    assert properties["fallback"] == {"allOf": [{"$ref": "#/components/schemas/Limits"}],
                                      "description": "beside a $ref"}
    assert properties["either"] == {"anyOf": [{"type": "integer"}, {"type": "string"}], "nullable": True,
                                    "default": None}
    document = {"openapi": "3.0.3", "info": {"title": "t", "version": "1"}, "paths": {},
                "components": {"schemas": schemas}}
    validate(document)  # raises on anything 3.0 does not allow, such as {"type": "null"}


def test_what_30_cannot_say_is_refused():
    with pytest.raises(ValueError, match="'prefixItems' has no OpenAPI 3.0 equivalent"):
        openapi30({"type": "array", "prefixItems": [{"type": "integer"}]})
    with pytest.raises(ValueError, match="one type per schema"):
        openapi30({"type": ["string", "integer"]})
    with pytest.raises(ValueError, match="no null type"):
        openapi30({"type": "null"})


def test_two_models_nesting_different_schemas_under_one_name_are_refused():
    class Other(BaseModel):
        nested: Limits

    Renamed = type("Limits", (BaseModel,), {"__annotations__": {"high": int}})
    Clash = type("Clash", (BaseModel,), {"__annotations__": {"nested": Renamed}})
    assert set(component_schemas({"Everything": Everything, "Other": Other})) == {"Everything", "Limits", "Other"}
    with pytest.raises(ValueError, match="'Limits'"):
        component_schemas({"Everything": Everything, "Clash": Clash})
