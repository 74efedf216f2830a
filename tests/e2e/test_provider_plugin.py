"""The README's provider plug-in, exactly as printed, served by a real server process.

The code block after ``<!-- llm-provider-example: myproviders.py -->`` in README.md is written
to a fresh folder outside app/, with a ``.env`` holding its setting; the server starts there
with ``LLM_PROVIDER=myproviders:factory`` and an agent answers through it. A wrong
``LLM_PROVIDER`` stops the start with one line that names the setting.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.conftest import login
from tests.support.server_process import ROOT, TEST_ENV, ServerProcess

MARKER = "<!-- llm-provider-example: myproviders.py -->"


def readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    assert readme.count(MARKER) == 1, "the README example lost its marker"
    block = re.search(r"```python\n(.*?)```", readme.split(MARKER, 1)[1], re.DOTALL)
    assert block is not None, "no python block after the marker"
    return block.group(1)


def test_the_readme_provider_plugin_answers_an_agent(tmp_path: Path) -> None:
    (tmp_path / "myproviders.py").write_text(readme_example())
    # The plug-in's own variable, in the .env of the folder the service starts in.
    (tmp_path / ".env").write_text("ECHO_PREFIX=plug-in says:\n")
    env = {"LLM_PROVIDER": "myproviders:factory", "ECHO_MODEL": "echo-e2e"}
    with ServerProcess(env=env, cwd=tmp_path) as server:
        headers = {"Authorization": f"Bearer {login(server.url)}"}
        response = httpx.post(
            f"{server.url}/v1/agents/chat/invoke",
            json={"input": "Say hello"},
            headers=headers,
            timeout=10,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["output"] == "plug-in says: Say hello"  # the echo provider, not offline
        assert body["usage"]["completion_tokens"] == 3  # the prefix, "Say", "hello"
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        # The provider's name and model label the LLM metrics.
        assert 'provider="echo"' in metrics and 'model="echo-e2e"' in metrics


def start(env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.entrypoints.cli", "serve", "--port", "1"],
        cwd=cwd,
        env={**os.environ, **TEST_ENV, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_wrong_provider_stops_the_start_with_one_line_naming_the_setting(
    tmp_path: Path,
) -> None:
    for value, says in [
        ("myproviders:factory", "cannot import 'myproviders'"),  # not in this folder
        ("gpt4", "neither a built-in provider (openai, offline) nor an import path"),
        ("json:dumps", "not a ProviderSpec"),
    ]:
        result = start({"LLM_PROVIDER": value}, tmp_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("LLM_PROVIDER: ") and says in lines[0]
        assert "Traceback" not in result.stdout + result.stderr


def test_a_misspelt_provider_variable_in_env_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "myproviders.py").write_text(readme_example())
    (tmp_path / ".env").write_text("ECHO_PREFIX=ok\nECHO_PERFIX=typo\n")
    result = start({"LLM_PROVIDER": "myproviders:factory"}, tmp_path)
    assert result.returncode == 2
    assert "ECHO_PERFIX: Extra inputs are not permitted" in result.stderr
    assert "ECHO_PREFIX:" not in result.stderr
