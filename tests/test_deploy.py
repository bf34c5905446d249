"""The way to a deployed monitor: `make deploy` builds for the architecture the stack runs on with the
project's own SAM CLI and Python 3.13, is guided the first time (no stack yet) and says what it does; every
samconfig.toml environment says whether it schedules, and a first deploy monitors. (Nothing reaches AWS:
CloudFormation is moto's, and the commands are shown, not run.)"""

import json
import re
import shlex
import subprocess
import tomllib
import uuid
from pathlib import Path

import pytest

from tests.support import ROOT
from tools.deploy import main as deploy
from tools.deploy import overrides_dict, parameter_overrides
from tools.standins.template import load_template

SAMCONFIG = ROOT / "samconfig.toml"


@pytest.fixture
def cloud(aws, monkeypatch, tmp_path):
    """moto's CloudFormation as the account's, and no AWS set-up of this machine."""
    for name, value in aws.environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return aws


def samconfig(tmp_path: Path, overrides: str) -> Path:
    stack = f"monitor-{uuid.uuid4().hex[:8]}"
    path = tmp_path / "samconfig.toml"
    path.write_text(
        f'version = 0.1\n[default.global.parameters]\nstack_name = "{stack}"\nregion = "us-east-1"\n'
        f"[default.deploy.parameters]\nparameter_overrides = {json.dumps(overrides)}\n"
    )
    return path


def planned(capsys, *args: str) -> tuple[int, list[str]]:
    code = deploy(["--dry-run", *args])
    return code, capsys.readouterr().out.splitlines()


def commands(lines: list[str]) -> list[list[str]]:
    return [shlex.split(line[2:]) for line in lines if line.startswith("$ ")]


def test_a_first_deploy_builds_for_the_templates_architecture_and_is_guided(cloud, capsys, tmp_path):
    config = samconfig(tmp_path, 'StripeSecretId="s" ScheduleState="ENABLED"')

    code, lines = planned(capsys, "--samconfig", str(config))

    default = load_template()["Parameters"]["Architecture"]["Default"]
    assert code == 0
    assert (
        f"  architecture {default} (template.yaml's default): the build's wheels and bytecode are for it"
        in lines
    )
    assert any(line.startswith("  no such stack yet: this first deploy is guided") for line in lines)
    build, deploy_command = commands(lines)
    assert build == [".venv-tools/bin/sam", "build", "--config-env", "default", "--parameter-overrides",
                     f"Architecture={default}"]  # fmt: skip
    assert deploy_command == [".venv-tools/bin/sam", "deploy", "--config-env", "default", "--guided"]
    path = r"  PATH starts with /\S+ \(python3\.13, for the makefile builds\) and \.venv-tools/bin \(sam\)"
    assert any(re.fullmatch(path, line) for line in lines), lines


def test_a_later_deploy_is_not_guided_and_builds_for_the_architecture_samconfig_sets(cloud, capsys, tmp_path):
    config = samconfig(tmp_path, 'StripeSecretId="s" Architecture="x86_64"')
    stack = tomllib.loads(config.read_text())["default"]["global"]["parameters"]["stack_name"]
    template = {"Resources": {"Topic": {"Type": "AWS::SNS::Topic"}}}
    cloud.client("cloudformation").create_stack(StackName=stack, TemplateBody=json.dumps(template))

    code, lines = planned(capsys, "--samconfig", str(config))

    assert code == 0
    assert "  the stack exists: sam shows the change set and asks before it applies it" in lines
    build, deploy_command = commands(lines)
    assert build[-1] == "Architecture=x86_64"
    assert deploy_command == [".venv-tools/bin/sam", "deploy", "--config-env", "default"]


def test_schedule_disabled_pauses_one_deploy_keeping_the_other_parameters(cloud, capsys, tmp_path):
    config = samconfig(tmp_path, 'StripeSecretId="s" ScheduleState="ENABLED" LogLevel="DEBUG"')

    code, lines = planned(capsys, "--samconfig", str(config), "--schedule", "DISABLED", "--no-guided")

    deploy_command = commands(lines)[1]
    overrides = overrides_dict(deploy_command[deploy_command.index("--parameter-overrides") + 1])
    assert code == 0
    assert overrides == {"StripeSecretId": "s", "ScheduleState": "DISABLED", "LogLevel": "DEBUG"}
    assert any(line.startswith("  scheduled checks: DISABLED for this deploy") for line in lines)


def test_without_credentials_deploy_says_so_in_one_line(cloud, capsys, monkeypatch, tmp_path):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    code = deploy(["--dry-run", "--samconfig", str(samconfig(tmp_path, ""))])

    error = capsys.readouterr().err
    assert code == 1
    assert error.startswith("make deploy: no AWS credentials found: ") and error.count("\n") == 1


def test_every_environment_says_whether_it_schedules_and_a_first_deploy_monitors():
    config = tomllib.loads(SAMCONFIG.read_text())
    environments = [name for name, value in config.items() if isinstance(value, dict)]

    states = {
        env: overrides_dict(parameter_overrides(SAMCONFIG, env)).get("ScheduleState") for env in environments
    }

    assert set(environments) >= {"default", "prod"}
    assert all(state in ("ENABLED", "DISABLED") for state in states.values()), states
    assert states["default"] == "ENABLED"


def test_make_deploy_passes_the_environment_and_the_switches_on():
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", "-o", ".venv/.installed", "-o", ".venv-tools/.installed",
         "deploy", "ENV=prod", "SCHEDULE=DISABLED", "GUIDED=0"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip

    words = shlex.split(done.stdout.replace("\\\n", " "))
    assert words[:3] == [".venv/bin/python", "-m", "tools.deploy"]
    assert words[3:] == ["--config-env", "prod", "--schedule", "DISABLED", "--no-guided"]
