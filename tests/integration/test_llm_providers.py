"""LLM providers and their own settings: names kept, .env accepted, typos refused, plug-ins.

Settings are loaded the way the service loads them (``load_settings()`` in a working directory
with a real ``.env``); plug-ins are real modules written to that directory and imported by
``LLM_PROVIDER=module:attribute``.
"""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from app.core.llm_settings import OfflineSettings, OpenAISettings
from app.core.settings_docs import env_example, markdown_table
from app.core.settings_loader import ConfigError, load_settings
from app.llm.cache import cache_key
from app.llm.factory import build_llm
from app.llm.offline import OfflineProvider
from app.llm.openai_compat import OpenAICompatProvider
from app.llm.providers import BUILTIN_PROVIDERS
from app.llm.types import ChatMessage, LLMRequest

REQUEST = LLMRequest(messages=[ChatMessage(role="user", content="Say hello")])
OPENAI_NAMES = [f"OPENAI_{name}" for name in OpenAISettings.model_fields]
OFFLINE_NAMES = [f"OFFLINE_{name}" for name in OfflineSettings.model_fields]

PLUGIN = """
from collections.abc import AsyncIterator

from pydantic_settings import SettingsConfigDict

from app.llm.providers import (
    LLMDelta, LLMFinal, LLMRequest, LLMResponse, LLMStreamItem, ProviderSettings, ProviderSpec,
    RequestDefaults,
)

SEEN: list[LLMRequest] = []


class CountSettings(ProviderSettings):
    model_config = SettingsConfigDict(env_prefix="{prefix}")

    ANSWER: str = "counted"
    TEMPERATURE: float | None = None
    MAX_TOKENS: int | None = None


class CountProvider:
    name = "count"
    model = "count-1"

    def __init__(self, settings: CountSettings) -> None:
        self.answer = settings.ANSWER
        self.defaults = RequestDefaults(settings.TEMPERATURE, settings.MAX_TOKENS)

    async def complete(self, request: LLMRequest) -> LLMResponse:
        raise NotImplementedError

    async def stream(self, request: LLMRequest) -> AsyncIterator[LLMStreamItem]:
        SEEN.append(request)
        yield LLMDelta(text=self.answer)
        yield LLMFinal(response=LLMResponse(content=self.answer, model=self.model))

    async def aclose(self) -> None:
        pass


spec = ProviderSpec(settings_model=CountSettings, build=CountProvider)
not_a_spec = {{"settings_model": CountSettings}}
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory (the service reads ./.env) and a clean environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in (*OPENAI_NAMES, *OFFLINE_NAMES, "LLM_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def plugin(workdir: Path, prefix: str = "COUNT_") -> str:
    """Write the plug-in under a fresh module name; returns that name."""
    module = f"plugin_{uuid.uuid4().hex[:10]}"
    (workdir / f"{module}.py").write_text(textwrap.dedent(PLUGIN.format(prefix=prefix)))
    return module


def test_builtin_variables_keep_their_names_in_env_file_and_environment(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / ".env").write_text(
        "LLM_PROVIDER=openai\nOPENAI_MODEL=from-file\nOPENAI_MAX_RETRIES=4\n"
        "OPENAI_API_KEY=sk-file\nOFFLINE_LATENCY_MS=7\n"
    )
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "5")  # the environment wins over .env

    settings = load_settings()
    assert isinstance(settings.llm, OpenAISettings)
    assert settings.llm.MODEL == "from-file" and settings.llm.MAX_RETRIES == 5
    assert settings.llm.API_KEY is not None and settings.llm.API_KEY.get_secret_value() == "sk-file"
    # Keyword arguments win over both, as for every other setting.
    argued = load_settings(OPENAI_MODEL="from-argument").llm
    assert isinstance(argued, OpenAISettings) and argued.MODEL == "from-argument"
    # The other built-in's lines are welcome in the same file, and still read.
    offline = load_settings(LLM_PROVIDER="offline").llm
    assert isinstance(offline, OfflineSettings) and offline.LATENCY_MS == 7


async def test_the_factory_builds_each_builtin_from_its_settings(workdir: Path) -> None:
    (workdir / ".env").write_text("OFFLINE_RESPONSE_TOKENS=3\nOPENAI_BASE_URL=http://llm:8000/v1\n")
    offline = build_llm(load_settings(OFFLINE_LATENCY_MS=0), None)
    openai = build_llm(load_settings(LLM_PROVIDER="openai", OPENAI_TEMPERATURE=0.4), None)
    try:
        assert isinstance(offline.provider, OfflineProvider)
        answer = await offline.complete(REQUEST)
        assert answer.usage.completion_tokens == 3  # OFFLINE_RESPONSE_TOKENS from .env
        assert isinstance(openai.provider, OpenAICompatProvider)
        assert openai.provider.host == "llm:8000"
        assert openai.provider.defaults.temperature == 0.4
    finally:
        await offline.aclose()
        await openai.aclose()


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("OPENAI_MODLE=gpt-4o", "OPENAI_MODLE"),  # a typo in a built-in's variable
        ("OFFLINE_LATENCY=5", "OFFLINE_LATENCY"),
        ("COUNT_ANSWER=x", "COUNT_ANSWER"),  # a plug-in's variable while no plug-in is used
        ("RATE_LIMT_REQUESTS=5", "RATE_LIMT_REQUESTS"),  # the main settings, as before
    ],
)
def test_misspelt_or_foreign_names_in_env_file_are_refused(
    workdir: Path, line: str, named: str
) -> None:
    (workdir / ".env").write_text(f"OPENAI_MODEL=fine\n{line}\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.splitlines() == [
        "invalid configuration:",
        f"  {named}: Extra inputs are not permitted",
    ]


def test_bad_provider_values_are_named_and_never_echoed(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_MAX_RETRIES", "lots-SECRET-VALUE")
    (workdir / ".env").write_text("OPENAI_TEMPERATURE=7\nOFFLINE_LATENCY_MS=-1\n")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert message.splitlines()[0] == "invalid configuration:"
    for name in ("OPENAI_MAX_RETRIES", "OPENAI_TEMPERATURE", "OFFLINE_LATENCY_MS"):
        assert f"  {name}: " in message
    assert "SECRET-VALUE" not in message and "lots" not in message


async def test_a_plugin_reads_its_own_variables_from_env_file(workdir: Path) -> None:
    module = plugin(workdir)
    (workdir / ".env").write_text(f"LLM_PROVIDER={module}:spec\nCOUNT_ANSWER=from the plug-in\n")
    settings = load_settings()
    llm = build_llm(settings, None)
    try:
        assert llm.name == "count"
        assert (await llm.complete(REQUEST)).content == "from the plug-in"
    finally:
        await llm.aclose()
    (workdir / ".env").write_text(f"LLM_PROVIDER={module}:spec\nCOUNT_ANSWR=typo\n")
    with pytest.raises(ConfigError, match="COUNT_ANSWR: Extra inputs are not permitted"):
        load_settings()


async def test_a_plugins_defaults_shape_cacheability_and_the_key(workdir: Path) -> None:
    module = plugin(workdir)
    # temperature 0.7 by default: not deterministic, so never served from the cache.
    warm = build_llm(load_settings(LLM_PROVIDER=f"{module}:spec", COUNT_TEMPERATURE=0.7), None)
    # max_tokens 5 by default: deterministic, cached, keyed with the 5 really sent.
    capped = build_llm(load_settings(LLM_PROVIDER=f"{module}:spec", COUNT_MAX_TOKENS=5), None)
    seen = sys.modules[module].SEEN
    try:
        await warm.complete(REQUEST)
        second = await warm.complete(REQUEST)
        assert len(seen) == 2 and not second.cached
        assert [request.temperature for request in seen] == [0.7, 0.7]
        await capped.complete(REQUEST)
        again = await capped.complete(REQUEST)
        assert len(seen) == 3 and again.cached
        assert seen[-1].max_tokens == 5
    finally:
        await warm.aclose()
        await capped.aclose()
    sent = seen[-1]
    assert cache_key(provider="count", request=sent) != cache_key(
        provider="count", request=sent.model_copy(update={"max_tokens": None})
    )
    assert cache_key(provider="count", request=sent) != cache_key(provider="offline", request=sent)


@pytest.mark.parametrize(
    ("attribute", "prefix", "says"),
    [
        ("not_a_spec", "COUNT_", "is a dict, not a ProviderSpec"),
        ("missing", "COUNT_", "has no attribute 'missing'"),
        ("spec", "REDIS_", "env_prefix 'REDIS_' of"),  # would swallow REDIS_URL
        ("spec", "", "needs an env_prefix like 'MYLLM_'"),
    ],
)
def test_a_broken_plugin_is_one_line_naming_the_setting(
    workdir: Path, attribute: str, prefix: str, says: str
) -> None:
    module = plugin(workdir, prefix=prefix)
    with pytest.raises(ConfigError) as info:
        load_settings(LLM_PROVIDER=f"{module}:{attribute}")
    message = str(info.value)
    assert message.startswith("LLM_PROVIDER: ") and "\n" not in message
    assert says in message


def test_the_settings_reference_lists_the_builtin_providers_settings() -> None:
    text, table = env_example(), markdown_table()
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in (*OPENAI_NAMES, *OFFLINE_NAMES):
        assert f"# {name}=" in text
        assert f"| `{name}` |" in table and f"| `{name}` |" in readme
    # Right after LLM_PROVIDER, where a reader looks for them.
    assert text.index("# LLM_PROVIDER=") < text.index("# OPENAI_BASE_URL=")
    assert text.index("# OFFLINE_RESPONSE_TOKENS=") < text.index("# CACHE_ENABLED=")


def test_every_builtin_provider_has_its_settings_model() -> None:
    from app.core.llm_settings import BUILTIN_PROVIDER_SETTINGS

    assert BUILTIN_PROVIDERS.keys() == BUILTIN_PROVIDER_SETTINGS.keys()
    for name, spec in BUILTIN_PROVIDERS.items():
        assert spec.settings_model is BUILTIN_PROVIDER_SETTINGS[name]
