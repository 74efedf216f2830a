"""Reading a principal's task records for the task benchmarks, without the status filter.

A status-filtered listing counts only among the newest 1,000 records (FILTER_SCAN in
app/store/run_store_redis.py), so a burst larger than that never looks finished through it.
These helpers page through the unfiltered listing, whose ``total`` is the whole index.
"""

from __future__ import annotations

from typing import Any

import httpx

PAGE = 100  # the listing's largest page


async def all_task_records(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """Every task record of the client's principal, newest first."""
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        response = await client.get("/v1/tasks", params={"limit": PAGE, "offset": offset})
        response.raise_for_status()
        page = response.json()
        records += page["items"]
        offset += PAGE
        if offset >= page["total"]:
            return records
