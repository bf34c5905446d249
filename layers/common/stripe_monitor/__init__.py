"""Stripe event destination monitor: shared code of the Lambda layer.

Where things happen:
- ``stripe_client``   sends requests to Stripe (the only module that touches HTTP)
- ``stripe_models``   validates Stripe's answers (Powertools Parser / pydantic)
- ``ping``            one ping = one classified ``PingResult``
- ``check_store``     reads and writes check records (the only module that touches DynamoDB)
- ``checks``          the monitor's logic: check one destination, run a schedule, read history
"""
