"""agent-service: a production-hardened FastAPI service that serves AI agents."""

__version__ = "0.1.0"
