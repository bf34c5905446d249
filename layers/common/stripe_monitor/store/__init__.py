"""The only code that touches DynamoDB: the results table, one module per kind of item.

Item kinds (partition ``destination_id``, sort ``pinged_at``):
- a check:        ``ed_...``                  / ISO time of the check           (``checks.py``)
- a state:        ``#state``                  / ``ed_...``                       (``states.py``)
- a transition:   ``#transition#ed_...``      / ISO time of the change          (``transitions.py``)
- a receipt:      ``#receipt#ed_...``         / event id                        (``receipts.py``)
- an idempotency key of an API ping: ``#idempotency#ed_...`` / the key           (``idempotency.py``)
``#`` cannot start a destination id, so the kinds never mix, and one Query lists every destination seen.
"""
