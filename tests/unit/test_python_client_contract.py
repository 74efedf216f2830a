"""The Python client against the server's own definitions: its event models must be the
server's (the JSON schemas are compared), and every operation of the OpenAPI document must
be reachable from it or listed as not covered, with a reason."""

from __future__ import annotations

from typing import Any, get_args

from agent_service_client import AsyncClient, Client
from agent_service_client import events as client_events
from agent_service_client.manifest import OPERATIONS
from pydantic import BaseModel

from app.agents import events as server_events
from app.agents.followers import EventsMissed
from app.main import create_app
from tests.conftest import SettingsFactory

METHODS = {"get", "post", "put", "patch", "delete"}


def _openapi(make_settings: SettingsFactory) -> dict[str, Any]:
    document: dict[str, Any] = create_app(make_settings()).openapi()
    return document


def test_the_client_event_models_are_the_servers() -> None:
    assert client_events.EVENT_ADAPTER.json_schema() == server_events.EVENT_ADAPTER.json_schema()
    assert client_events.TERMINAL_TYPES == server_events.TERMINAL_TYPES
    # The notice's record is a dict on the client's side: the same fields, no RunRecord.
    assert set(client_events.EventsMissed.model_fields) == set(EventsMissed.model_fields)


def test_every_frame_the_openapi_document_describes_is_parsed(
    make_settings: SettingsFactory,
) -> None:
    schemas = _openapi(make_settings)["components"]["schemas"]
    mapping = schemas["TaskStreamEvent"]["discriminator"]["mapping"]
    handled_by_the_stream = {"shutdown"}  # a reconnection, not an item
    models = _client_models()
    assert set(mapping) - handled_by_the_stream == set(models)
    for event_type, ref in mapping.items():
        if event_type in handled_by_the_stream:
            continue
        documented = set(schemas[ref.rsplit("/", 1)[1]]["properties"])
        assert set(models[event_type].model_fields) == documented, event_type


def _client_models() -> dict[str, type[BaseModel]]:
    """The client's model of each event type, from its union."""
    members = get_args(get_args(client_events.Event)[0])
    models: dict[str, type[BaseModel]] = {m.model_fields["type"].default: m for m in members}
    return {**models, "events_missed": client_events.EventsMissed}


def test_every_operation_is_in_the_manifest_and_every_method_exists(
    make_settings: SettingsFactory,
) -> None:
    paths = _openapi(make_settings)["paths"]
    operations = {
        f"{method.upper()} {path}"
        for path, item in paths.items()
        for method in item
        if method in METHODS
    }
    assert operations - set(OPERATIONS) == set(), "operations the client neither calls nor lists"
    assert set(OPERATIONS) - operations == set(), "manifest entries the server no longer has"
    for operation, target in OPERATIONS.items():
        if target.startswith("not covered: "):
            assert len(target) > len("not covered: ") + 10, f"{operation}: say why"
            continue
        for client in (Client, AsyncClient):
            assert callable(getattr(client, target, None)), f"{client.__name__}.{target}"


def test_the_console_script_loads_the_client_only_for_its_verbs() -> None:
    import subprocess
    import sys

    from tests.support.server_process import ROOT

    probe = "import sys, app.entrypoints.cli; print('agent_service_client' in sys.modules)"
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert loaded.stdout.strip() == "False", loaded.stderr
