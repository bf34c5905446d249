"""PingFunction's and ReceiptFunction's handlers, imported into this process as Lambda would run them.

Both functions' files are called ``app.py``: PingFunction's is ``import app`` (with ``functions/ping`` on
the path, as on Lambda), ReceiptFunction's is loaded from its file as ``receipt_app``, the name the tests
use too, so that one process holds one copy of each.
"""

import importlib.util
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
Handler = Callable[[dict[str, Any], Any], Any]
_LOADING = threading.Lock()  # two requests at once must not see a half-loaded module


def use_lambda_paths() -> None:
    """The layer's package and PingFunction's modules importable as on Lambda (/opt/python, /var/task)."""
    for path in (ROOT / "functions" / "ping", ROOT / "layers" / "common"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def ping_handler() -> Handler:
    use_lambda_paths()
    import app

    handler: Handler = app.lambda_handler
    return handler


def receipt_handler() -> Handler:
    use_lambda_paths()
    with _LOADING:
        module = sys.modules.get("receipt_app")
        if module is None:
            spec = importlib.util.spec_from_file_location(
                "receipt_app", ROOT / "functions" / "receipt" / "app.py"
            )
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules["receipt_app"] = module
            spec.loader.exec_module(module)
    handler: Handler = module.lambda_handler
    return handler


def reset_services() -> None:
    """Forget the services built from the environment (after it changed), as a new execution environment."""
    use_lambda_paths()
    from aws_lambda_powertools.utilities import parameters

    from stripe_monitor import wiring

    parameters.clear_caches()  # type: ignore[no-untyped-call]
    wiring.reset()
