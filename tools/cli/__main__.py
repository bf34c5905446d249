"""``python -m tools.cli``: the same as ``.venv/bin/stripe-monitor``."""

import sys

from tools.cli.main import main

sys.exit(main())
