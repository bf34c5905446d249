"""Stripe event destination monitor: the shared code of the Lambda layer (docs/architecture.md).

Imports run one way (``tools/import_rules.py`` checks it):
- ``errors``, ``model/``, ``config``   what everything shares: exceptions, data types, settings
- ``stripe/``                          sends a ping (``client``), validates the answer (``models``),
                                       classifies it (``classify``), verifies webhook signatures
- ``store/``                           the only code that touches DynamoDB, one module per item kind
- ``secrets_manager``, ``alerts``      the Stripe key and signing secrets; SNS alerts
- ``logic/``                           one check, a scheduled run, health, deliveries, queries
- ``wiring``, ``http_api``             each function's services; the one error map of both APIs
"""
