"""``stripe-monitor``: the command operators use on a deployed monitor (or on the local one).

It finds the API (``--api-url``, the ``ApiUrl`` output of a stack, or the stack ``samconfig.toml`` names),
signs each request with SigV4 from the standard AWS credential chain (botocore), and shows the answers as
tables or JSON. Modules, each importing only those before it: ``api`` (signed requests; every failure as
one clear line), ``locate`` (where the API is and which region to sign for), ``render`` (tables, ages,
colours), ``commands`` (the subcommands) and ``main`` (arguments and exit codes).
"""
