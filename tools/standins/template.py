"""Read ``template.yaml`` as data, so tests and local runs build their stand-ins from the real template.

CloudFormation's short tags (``!Ref``, ``!Sub``, ``!GetAtt`` ...) become the long JSON form
(``{"Ref": ...}``, ``{"Fn::Sub": ...}``, ``{"Fn::GetAtt": [resource, attribute]}``), as CloudFormation
itself reads them.
"""

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
RESULTS_TABLE = "ResultsTable"

# Short tag -> the key of its long form. Anything else starting with "!" is an error, not a silent string.
_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "And",
            "Base64",
            "Cidr",
            "Equals",
            "FindInMap",
            "GetAtt",
            "GetAZs",
            "If",
            "ImportValue",
            "Join",
            "Length",
            "Not",
            "Or",
            "Select",
            "Split",
            "Sub",
            "ToJsonString",
            "Transform",
        )
    },
}


class _CloudFormationLoader(yaml.SafeLoader):
    """A safe YAML loader that also understands CloudFormation's short intrinsic-function tags."""


def _construct_short_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if tag_suffix not in _SHORT_TAGS:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation tag !{tag_suffix}", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    elif isinstance(node, yaml.MappingNode):
        value = loader.construct_mapping(node, deep=True)
    else:  # pragma: no cover - PyYAML has no other node kinds
        raise yaml.constructor.ConstructorError(None, None, f"unexpected node {node!r}", node.start_mark)
    if tag_suffix == "GetAtt" and isinstance(value, str):
        # "Resource.Attribute" (the attribute may itself contain dots, e.g. Endpoint.Address)
        value = value.split(".", 1)
    return {_SHORT_TAGS[tag_suffix]: value}


_CloudFormationLoader.add_multi_constructor("!", _construct_short_tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template at ``path`` as plain data, intrinsic functions in their long form."""
    with path.open(encoding="utf-8") as stream:
        template = yaml.load(stream, Loader=_CloudFormationLoader)  # noqa: S506 - a SafeLoader subclass
    if not isinstance(template, dict) or not isinstance(template.get("Resources"), dict):
        raise ValueError(f"{path} is not a CloudFormation template (no Resources mapping)")
    return template


def _results_table_properties(template: Mapping[str, Any]) -> dict[str, Any]:
    resource = template["Resources"][RESULTS_TABLE]
    if resource.get("Type") != "AWS::DynamoDB::Table":
        raise ValueError(f"{RESULTS_TABLE} is a {resource.get('Type')}, expected AWS::DynamoDB::Table")
    properties: dict[str, Any] = resource["Properties"]
    return properties


def results_table_create_args(template: Mapping[str, Any], table_name: str | None = None) -> dict[str, Any]:
    """``boto3`` ``create_table`` keyword arguments for the template's ``ResultsTable``.

    Keys, attribute definitions, billing mode and any secondary indexes come from the template; the
    table name is the caller's (left out when ``table_name`` is None).
    """
    properties = _results_table_properties(template)
    args: dict[str, Any] = {
        "KeySchema": copy.deepcopy(properties["KeySchema"]),
        "AttributeDefinitions": copy.deepcopy(properties["AttributeDefinitions"]),
        "BillingMode": properties.get("BillingMode", "PROVISIONED"),
    }
    for optional in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes", "ProvisionedThroughput"):
        if optional in properties:
            args[optional] = copy.deepcopy(properties[optional])
    if table_name is not None:
        args["TableName"] = table_name
    return args


def results_table_ttl_attribute(template: Mapping[str, Any]) -> str:
    """The attribute DynamoDB's TTL reads on ``ResultsTable`` (raises if TTL is not enabled)."""
    ttl = _results_table_properties(template).get("TimeToLiveSpecification") or {}
    if ttl.get("Enabled") is not True:
        raise ValueError(f"{RESULTS_TABLE} has no enabled TimeToLiveSpecification")
    attribute: str = ttl["AttributeName"]
    return attribute
