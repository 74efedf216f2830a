"""Bodies of the probe routes (/health/live, /health/ready, /health)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Liveness(BaseModel):
    status: Literal["ok"]


class DependencyCheck(BaseModel):
    status: Literal["ok", "down", "disabled"] = Field(
        description="disabled: not configured (e.g. no REDIS_URL), so not required."
    )
    error: str = Field(
        "", description="Only when down: the type of the error the check met, e.g. TimeoutError."
    )
    detail: str = Field(
        "",
        description=(
            "Only when down, when known: which node failed or what it reported, e.g. "
            "'10.0.0.7:6379 did not answer' or '10.0.0.5:6379 reports cluster_state:fail' "
            "(Redis Cluster), 'the node the sentinels name answers as slave' (Sentinel)."
        ),
    )


class Readiness(BaseModel):
    """Not problem+json on purpose: a probe reads the status code, a person the checks."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"status": "ok", "checks": {"redis": {"status": "ok"}}},
                {
                    "status": "unavailable",
                    "checks": {"redis": {"status": "down", "error": "TimeoutError"}},
                },
                {
                    "status": "unavailable",
                    "checks": {
                        "redis": {
                            "status": "down",
                            "error": "ConnectionError",
                            "detail": "10.0.0.7:6379 did not answer",
                        }
                    },
                },
            ]
        }
    )

    status: Literal["ok", "unavailable"]
    checks: dict[str, DependencyCheck] = Field(description="One entry per dependency.")
