"""The forwarding snippets of docs/snippets/ and the real runtimes that run them, each through a small
harness (tests/snippets/harness/) that calls the snippet's function as a web handler would: the raw body
on stdin, the Stripe-Signature header in STRIPE_SIGNATURE, the monitor's URL in MONITOR_WEBHOOK_URL.

A runtime that is not installed (tools/install-snippet-runtimes installs them all) makes its tests skip
with the reason, never pass.
"""

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import ROOT

SNIPPETS = ROOT / "docs" / "snippets"
HARNESS = Path(__file__).parent / "harness"
INSTALL = "tools/install-snippet-runtimes installs them all"


@dataclass(frozen=True)
class Forwarded:
    """What the harness printed ("forwarded" or "not forwarded"), and the runtime's stderr (its log)."""

    result: str
    log: str


@dataclass(frozen=True)
class Snippet:
    language: str
    file: str  # in docs/snippets/
    executable: str
    packages: str  # Debian's
    # What the snippet needs beyond the executable: a command that succeeds when it is there, and the why.
    requirement: tuple[tuple[str, ...], str] | None = None

    @property
    def path(self) -> Path:
        return SNIPPETS / self.file

    def find(self) -> str:
        """The runtime's executable; skips the test, saying why, when it cannot run the snippet."""
        install = f"apt-get install {self.packages}; {INSTALL}"
        found = shutil.which(self.executable)
        if found is None:
            pytest.skip(f"{self.language}: {self.executable} is not on PATH ({install})")
        if self.requirement is not None:
            check, why = self.requirement
            if subprocess.run([found, *check], capture_output=True, timeout=30).returncode != 0:
                pytest.skip(f"{self.language}: {why} ({install})")
        return found


SNIPPET_LIST = (
    Snippet("python", "forward_receipt.py", "python3", "python3"),
    Snippet(
        "node",
        "forward_receipt.mjs",
        "node",
        "nodejs",
        (("-e", "process.exit(typeof fetch === 'function' ? 0 : 1)"), "this Node.js has no fetch (18+)"),
    ),
    Snippet("ruby", "forward_receipt.rb", "ruby", "ruby"),
    Snippet(
        "php",
        "forward_receipt.php",
        "php",
        "php-cli php-curl",
        (("-r", "exit(function_exists('curl_init') ? 0 : 1);"), "PHP has no curl extension"),
    ),
    Snippet("go", "forward_receipt.go", "go", "golang-go"),
)
SNIPPETS_BY_LANGUAGE = {snippet.language: snippet for snippet in SNIPPET_LIST}
LANGUAGES = list(SNIPPETS_BY_LANGUAGE)

_HARNESS_FILES = {"python": "harness.py", "node": "harness.mjs", "ruby": "harness.rb", "php": "harness.php"}
GO_MODULE = "module snippetharness\n\ngo 1.19\n"


class Harnesses:
    """The command that runs each language's harness: found once per test session (Go's is built once)."""

    def __init__(self, build_dir: Path) -> None:
        self.build_dir = build_dir
        self._commands: dict[str, list[str]] = {}

    def command(self, language: str) -> list[str]:
        if language not in self._commands:
            snippet = SNIPPETS_BY_LANGUAGE[language]
            executable = snippet.find()
            if language == "go":
                self._commands[language] = [self._build_go(executable)]
            else:
                harness = HARNESS / _HARNESS_FILES[language]
                self._commands[language] = [executable, str(harness), str(snippet.path)]
        return self._commands[language]

    def _build_go(self, go: str) -> str:
        """A module of its own: the harness as main, the snippet copied unchanged into ./monitor."""
        module = self.build_dir / "go"
        (module / "monitor").mkdir(parents=True)
        (module / "go.mod").write_text(GO_MODULE)
        shutil.copy(HARNESS / "harness.go", module / "main.go")
        shutil.copy(SNIPPETS_BY_LANGUAGE["go"].path, module / "monitor" / "forward_receipt.go")
        binary = module / "harness"
        # Offline and hermetic: no proxy, no toolchain download, no C compiler needed.
        env = os.environ | {"CGO_ENABLED": "0", "GOFLAGS": "-mod=mod", "GOPROXY": "off"}
        env["GOTOOLCHAIN"] = "local"
        if "HOME" not in env:
            env |= {"GOCACHE": str(self.build_dir / "go-cache"), "GOPATH": str(self.build_dir / "go-path")}
        command = [go, "build", "-o", str(binary), "."]
        built = subprocess.run(command, cwd=module, env=env, capture_output=True, text=True, timeout=300)
        assert built.returncode == 0, f"go build of the snippet failed:\n{built.stderr}"
        return str(binary)

    def forward(self, language: str, body: bytes, signature: str, monitor_url: str | None) -> Forwarded:
        """Run the snippet once, as the user's webhook handler would for this request. Its environment has
        no AWS credentials and no secret: only the monitor's URL. Fails the test if the run fails."""
        env = {"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8", "STRIPE_SIGNATURE": signature}
        if "HOME" in os.environ:
            env["HOME"] = os.environ["HOME"]
        if monitor_url is not None:
            env["MONITOR_WEBHOOK_URL"] = monitor_url
        ran = subprocess.run(self.command(language), input=body, env=env, capture_output=True, timeout=60)
        log = ran.stderr.decode(errors="replace")
        assert ran.returncode == 0, f"the {language} snippet broke the handler ({ran.returncode}):\n{log}"
        return Forwarded(ran.stdout.decode().strip(), log)


@dataclass(frozen=True)
class Harness:
    """One language's harness, ready to run."""

    language: str
    harnesses: Harnesses

    def forward(self, body: bytes, signature: str, monitor_url: str | None) -> Forwarded:
        return self.harnesses.forward(self.language, body, signature, monitor_url)
