"""`make` for a new user: `make help` (the default) lists every target with one line, and the venv step
installs this project into .venv, so that `.venv/bin/stripe-monitor` is the CLI."""

import importlib
import re
import subprocess
import tomllib

from tests.support import ROOT

MAKEFILE = ROOT / "Makefile"


def make(*args: str) -> str:
    done = subprocess.run(
        ["make", "--no-print-directory", "-o", ".venv/.installed", "-o", ".venv-tools/.installed", *args],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout


def test_make_help_is_the_default_and_lists_every_target_with_one_line():
    phony = re.search(r"^\.PHONY: (.+)$", MAKEFILE.read_text(), re.MULTILINE)
    assert phony
    targets = set(phony[1].split())

    bare, help_text = make(), make("help")

    assert bare == help_text
    listed = dict(re.findall(r"^  ([a-z-]+) +(\S.*)$", help_text, re.MULTILINE))
    assert set(listed) == targets
    assert all(len(line) <= 110 for line in help_text.splitlines())


def test_the_venv_step_installs_this_project_so_that_stripe_monitor_is_the_cli():
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    recipe = MAKEFILE.read_text().split("$(VENV)/.installed:", 1)[1].split("\n\n", 1)[0]

    assert scripts == {"stripe-monitor": "tools.cli.main:main"}
    assert "pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e ." in recipe
    module, function = scripts["stripe-monitor"].split(":")
    assert callable(getattr(importlib.import_module(module), function))  # the entry point resolves
