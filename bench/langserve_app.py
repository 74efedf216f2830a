"""LangServe serving bench/bare_app.py's answer: a comparator of bench/agent_path.py.

What a user who picks LangServe writes: a LangChain chat model behind
``langserve.add_routes(app, model, path="/chat")``. Requests and answers are LangServe's own:

- ``POST /chat/invoke`` ``{"input": "<text>"}`` -> ``{"output": {"content": <answer>, ...},
  "metadata": {"run_id": ...}}``.
- ``POST /chat/stream`` -> server-sent events from sse-starlette 1 (frames end in
  ``\\r\\n\\r\\n``): ``event: metadata``, one ``event: data`` per chunk (one per token, then
  langchain-core's closing chunk with empty content), ``event: end``.
- ``GET /health/live`` (the harness waits on it).

The model (``PacedAnswerModel``) answers what bench/bare_app.py answers, with its timing and
its environment (BARE_TOKENS, BARE_LATENCY_MS, BARE_TOKENS_PER_SECOND): invoke sleeps the
latency and returns the whole answer, like bare's ``/invoke``; stream sleeps the latency,
then yields one chunk per token on bare's absolute pacing schedule. Each chunk carries
``response_metadata.ts``, stamped as it is made like bare's frames' ``ts``, so S4's
lateness (arrival minus ``ts``) means the same for both.

Runs in its own venv, .venv-langserve (bench/comparator_envs.py makes it from
bench/langserve-requirements.txt): LangServe 0.3.3 pins sse-starlette<2, our service needs 3.
Run: ``.venv-langserve/bin/python -m bench.langserve_app --port N`` from the repo root (one
uvicorn worker, uvloop + httptools, no access log, like bench/bare_app.py).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langserve import add_routes  # type: ignore[import-not-found, unused-ignore]

from bench.bare_app import ANSWER, LATENCY_S, _ts, paced_tokens, serve


class PacedAnswerModel(BaseChatModel):
    """A chat model that answers bench/bare_app.py's tokens with bare_app's timing."""

    @property
    def _llm_type(self) -> str:
        return "paced-answer"

    def _result(self) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=ANSWER))])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # Required by BaseChatModel; LangServe's async routes use _agenerate and _astream.
        time.sleep(LATENCY_S)
        return self._result()

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if LATENCY_S:
            await asyncio.sleep(LATENCY_S)
        return self._result()

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        if LATENCY_S:
            await asyncio.sleep(LATENCY_S)
        async for token in paced_tokens():
            message = AIMessageChunk(content=token, response_metadata={"ts": _ts()})
            chunk = ChatGenerationChunk(message=message)
            if run_manager is not None:  # what a real model integration reports per token
                await run_manager.on_llm_new_token(token, chunk=chunk)
            yield chunk


app = FastAPI(title="LangServe comparator")  # as a LangServe user writes it: docs and all
add_routes(app, PacedAnswerModel(), path="/chat")


@app.get("/health/live")
async def live() -> dict[str, str]:
    return {"status": "ok"}


def main() -> None:
    serve(app, __doc__.split("\n", 1)[0])


if __name__ == "__main__":
    main()
