"""Agents: the protocol, events, registry, run context and run service."""
