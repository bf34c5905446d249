"""``make cost``: what is costed: the reference deployment that template.yaml deploys with its parameter
defaults, and the settings of the run."""

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from tools.standins.template import RESULTS_TABLE, load_template

ROOT = Path(__file__).resolve().parents[1]
STACK = "stripe-destination-monitor-prod"
Channel = Literal["webhook", "eventbridge"]


class UnresolvedError(ValueError):
    pass


@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    code_dir: Path
    module: str
    handler: str
    memory_mb: int
    timeout_s: int
    architecture: str
    tracing: bool
    variables: dict[str, Any]  # Globals' and the function's own, as written in the template

    @property
    def name(self) -> str:
        """The name CloudFormation gives the function (stack, logical id, 12 random characters)."""
        return f"{STACK}-{self.logical_id}-AbCdEf012345"


@dataclass(frozen=True)
class Reference:
    """What template.yaml, with its parameter defaults, deploys."""

    template: dict[str, Any]
    parameters: dict[str, str]
    functions: dict[str, FunctionSpec]
    schedule_minutes: int
    alarms: int
    dashboards: int
    ssm_parameters: int
    log_retention_days: int
    result_retention_days: int
    pitr: bool
    api_detailed_metrics: bool
    api_tracing: bool
    access_log_format: str

    @classmethod
    def load(cls, template: dict[str, Any] | None = None) -> "Reference":
        template = template or load_template()
        parameters = {
            name: str(spec["Default"])
            for name, spec in template.get("Parameters", {}).items()
            if "Default" in spec
        }
        resources: dict[str, Any] = template["Resources"]
        resolver = Resolver(parameters, template)
        globals_variables = template.get("Globals", {}).get("Function", {}).get("Environment", {})
        functions = {}
        for logical_id, resource in resources.items():
            if resource["Type"] != "AWS::Serverless::Function" or not resolver.exists(resource):
                continue
            props = resource["Properties"]
            module, handler = props["Handler"].rsplit(".", 1)
            architectures = props.get("Architectures", ["x86_64"])
            functions[logical_id] = FunctionSpec(
                logical_id=logical_id,
                code_dir=ROOT / props["CodeUri"],
                module=module,
                handler=handler,
                memory_mb=int(resolver.value(props.get("MemorySize", 128))),
                timeout_s=int(resolver.value(props.get("Timeout", 3))),
                architecture=resolver.value(architectures[0]),
                tracing=resolver.value(props.get("Tracing", "PassThrough")) == "Active",
                variables=dict(globals_variables.get("Variables", {}))
                | dict(props.get("Environment", {}).get("Variables", {})),
            )
        ping = resources["PingFunction"]["Properties"]
        [schedule] = [e["Properties"] for e in ping["Events"].values() if e["Type"] == "ScheduleV2"]
        api = resources["MonitorApi"]["Properties"]
        table = resources[RESULTS_TABLE]["Properties"]
        counted = {
            kind: sum(1 for r in resources.values() if r["Type"] == kind and resolver.exists(r))
            for kind in ("AWS::CloudWatch::Dashboard", "AWS::SSM::Parameter")
        }
        return cls(
            template=template,
            parameters=parameters,
            functions=functions,
            schedule_minutes=rate_minutes(resolver.value(schedule["ScheduleExpression"])),
            alarms=sum(
                len([m for m in r["Properties"].get("Metrics", []) if "MetricStat" in m]) or 1
                for r in resources.values()
                if r["Type"] == "AWS::CloudWatch::Alarm" and resolver.exists(r)
            ),
            dashboards=counted["AWS::CloudWatch::Dashboard"],
            ssm_parameters=counted["AWS::SSM::Parameter"],
            # The longest retention of the stack's log groups (0: kept for ever).
            log_retention_days=max(
                (
                    int(resolver.value(r["Properties"].get("RetentionInDays", 0)))
                    for r in resources.values()
                    if r["Type"] == "AWS::Logs::LogGroup" and resolver.exists(r)
                ),
                default=0,
            ),
            result_retention_days=int(
                next(
                    resolver.value(f.variables["RESULT_RETENTION_DAYS"])
                    for f in functions.values()
                    if "RESULT_RETENTION_DAYS" in f.variables
                )
            ),
            pitr=bool(
                table.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled", False)
            ),
            api_detailed_metrics=any(
                resolver.flag(s.get("MetricsEnabled")) for s in api.get("MethodSettings", [])
            ),
            api_tracing=resolver.flag(api.get("TracingEnabled")),
            access_log_format=str(api.get("AccessLogSetting", {}).get("Format", "")),
        )


class Resolver:
    """Parameter references and conditions of the template, with the parameters' defaults."""

    def __init__(self, parameters: dict[str, str], template: dict[str, Any]) -> None:
        self.parameters = parameters
        self.conditions: dict[str, Any] = template.get("Conditions", {})

    def flag(self, value: Any) -> bool:
        """A boolean property, maybe conditional (``!If [Condition, true, false]``)."""
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            return self.flag(when_true if self.condition({"Condition": condition}) else when_false)
        return bool(value)

    def value(self, value: Any) -> str:
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, dict) and set(value) == {"Ref"} and value["Ref"] in self.parameters:
            return self.parameters[value["Ref"]]
        if isinstance(value, dict) and set(value) == {"Fn::If"}:
            condition, when_true, when_false = value["Fn::If"]
            return self.value(when_true if self.condition({"Condition": condition}) else when_false)
        raise UnresolvedError(f"cannot resolve {value!r} from the parameters' defaults")

    def condition(self, expression: Any) -> bool:
        if isinstance(expression, dict) and len(expression) == 1:
            [(name, argument)] = expression.items()
            if name == "Condition":
                return self.condition(self.conditions[argument])
            if name == "Fn::Not":
                return not self.condition(argument[0])
            if name == "Fn::And":
                return all(self.condition(a) for a in argument)
            if name == "Fn::Or":
                return any(self.condition(a) for a in argument)
            if name == "Fn::Equals":
                return self.value(argument[0]) == self.value(argument[1])
        raise UnresolvedError(f"cannot evaluate the condition {expression!r}")

    def exists(self, resource: dict[str, Any]) -> bool:
        condition = resource.get("Condition")
        return condition is None or self.condition({"Condition": condition})


def rate_minutes(expression: str) -> int:
    found = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression.strip())
    if not found:
        raise UnresolvedError(f"only rate(...) schedules can be costed, not {expression!r}")
    scale = {"minute": 1, "hour": 60, "day": 1440}[found[2].rstrip("s")]
    return int(found[1]) * scale


# ------------------------------------------------------------------------------------------ settings


@dataclass(frozen=True)
class Settings:
    destinations: int
    step: int  # also measure ``destinations + step`` for the cost of one more destination (0: do not)
    cycles: int  # pairs of cycles: one cold, one warm
    latency_ms: float
    channel: Channel
    cold_share: Decimal
    days: int
    prices: Path
    out: Path
