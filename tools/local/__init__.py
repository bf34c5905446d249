"""The monitor's whole stack on this machine, for ``make local`` and ``python -m tools.run_local --serve``.

``handlers`` imports the two functions' handlers into this process as Lambda runs them; ``forwarder`` is
the part of "your application" that forwards Stripe's ping deliveries to the stack; ``stack`` starts the
stand-ins (moto, Stripe, API Gateway) around the handlers; ``demo`` is the screen ``make local`` shows.
"""
