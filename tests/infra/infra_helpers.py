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
