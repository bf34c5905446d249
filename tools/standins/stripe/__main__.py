"""``python -m tools.standins.stripe``: the Stripe stand-in on its own, until SIGINT or SIGTERM."""

import sys

from tools.standins.stripe.cli import main

sys.exit(main())
