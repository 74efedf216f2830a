"""A webhook receiver for tests: a real HTTP/1.1 server on loopback that records each POST
(headers and body) and answers with the statuses it is told to, so a test can await the
deliveries it expects, with a deadline."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.received: asyncio.Queue[Received] = asyncio.Queue()
        self.attempts: list[tuple[int, Received]] = []  # every request, with the status answered
        self._statuses = list(statuses or [])  # answered in turn, then 200
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/a2a"

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._connections):  # kept-alive connections end their reads
                writer.close()
            await self._server.wait_closed()

    async def next(self, timeout: float = 20.0) -> Received:
        return await asyncio.wait_for(self.received.get(), timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._connections.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                _, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                status = self._statuses.pop(0) if self._statuses else 200
                got = Received(path=path, headers=headers, body=body)
                self.attempts.append((status, got))
                if status == 200:
                    await self.received.put(got)
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            self._connections.discard(writer)
            writer.close()
