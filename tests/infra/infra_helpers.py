"""Helpers for reading synthesized templates (imported by the tests in this folder)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def resources_of(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == resource_type
    }


def function_id(template: dict[str, Any], name: str) -> str:
    """Logical id of the Lambda function whose handler is functions.<name>.handler.handler."""
    (logical_id,) = [
        logical_id
        for logical_id, resource in resources_of(template, "AWS::Lambda::Function").items()
        if resource["Properties"]["Handler"] == f"functions.{name}.handler.handler"
    ]
    return logical_id


def ref_id(value: Any) -> str:
    """The logical id a {"Ref": id} or {"Fn::GetAtt": [id, attr]} points at."""
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return str(value["Fn::GetAtt"][0])
    raise AssertionError(f"not a reference: {value!r}")


def api_logical_id(template: Mapping[str, Any], protocol: str) -> str:
    """Logical id of the stack's one API of `protocol` ("WEBSOCKET" for chat, "HTTP" for the
    operator API)."""
    (logical_id,) = [
        logical_id
        for logical_id, resource in resources_of(template, "AWS::ApiGatewayV2::Api").items()
        if resource["Properties"]["ProtocolType"] == protocol
    ]
    return logical_id


def api_resources(
    template: Mapping[str, Any], resource_type: str, protocol: str
) -> dict[str, dict[str, Any]]:
    """The `resource_type` resources (routes, stages, integrations, ...) of the API of `protocol`."""
    owner = api_logical_id(template, protocol)
    return {
        logical_id: resource
        for logical_id, resource in resources_of(template, resource_type).items()
        if ref_id(resource["Properties"]["ApiId"]) == owner
    }
