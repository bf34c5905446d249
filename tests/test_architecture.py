"""The import rules of the Lambda code (tools/import_rules.py, run by `make lint` too)."""

from pathlib import Path

from tools import import_rules


def test_the_project_keeps_its_import_rules():
    assert import_rules.broken_rules(import_rules.project_modules()) == []


def write(root: Path, files: dict[str, str]) -> tuple[Path, Path]:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "layers", root / "functions"


def test_an_import_against_the_direction_is_reported(tmp_path):
    package, functions = write(
        tmp_path,
        {
            "layers/stripe_monitor/__init__.py": "",
            "layers/stripe_monitor/model/check.py": "def f():\n    from stripe_monitor.logic import pinger\n",
            "layers/stripe_monitor/logic/pinger.py": "",
            "functions/ping/app.py": "",
        },
    )

    problems = import_rules.broken_rules(import_rules.project_modules(package, functions))

    assert len(problems) == 1
    assert "stripe_monitor.model.check (model) imports stripe_monitor.logic.pinger (logic)" in problems[0]


def test_a_cycle_through_a_lazy_import_is_reported(tmp_path):
    package, functions = write(
        tmp_path,
        {
            "layers/stripe_monitor/__init__.py": "",
            "functions/ping/app.py": "def api():\n    import api\n",
            "functions/ping/api.py": "from app import helper\n",
        },
    )

    problems = import_rules.broken_rules(import_rules.project_modules(package, functions))

    assert problems == ["import cycle: functions.ping.api -> functions.ping.app -> functions.ping.api"]


def test_a_library_imported_outside_its_owner_is_reported(tmp_path):
    package, functions = write(
        tmp_path,
        {
            "layers/stripe_monitor/__init__.py": "",
            "layers/stripe_monitor/logic/queries.py": "import boto3\n",
            "layers/stripe_monitor/store/checks.py": "import boto3\n",
            "functions/ping/app.py": "from aws_lambda_powertools.event_handler import Response\n",
        },
    )

    problems = import_rules.broken_rules(import_rules.project_modules(package, functions))

    assert len(problems) == 1
    assert "stripe_monitor.logic.queries imports boto3" in problems[0]
