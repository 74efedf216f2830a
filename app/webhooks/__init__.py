"""Webhooks: clients subscribe (POST /v1/webhooks) to the ends and questions of their runs and
tasks and are told, instead of polling.

- ``models``: subscriptions, deliveries and event types;
- ``subscriptions``: where subscriptions are kept (Redis or memory);
- ``deliveries`` / ``deliveries_redis``: the delivery records, their log per subscription,
  the due queue and the dead-letter list (memory, Redis);
- ``outbox``: watches the run store's status changes and queues one delivery per matching
  subscription;
- ``dispatcher``: in every worker process, takes due deliveries under a lease and POSTs them,
  signed per Standard Webhooks (``signing``), retrying with backoff up to a horizon.
"""
