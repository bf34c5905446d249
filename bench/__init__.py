"""Benchmark of the built monitor against the minimum and a stripe-python peer (``make bench``)."""
