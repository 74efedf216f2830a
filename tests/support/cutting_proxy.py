"""A TCP proxy in front of a real server that breaks chosen connections mid-response: how
a client's reconnection is tested against real sockets (a dropped mobile link, a proxy
timeout), without stopping the server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

from tests.support.ports import free_port


class CuttingProxy:
    """Forwards 127.0.0.1:port to ``upstream``; a connection whose request head satisfies
    ``cut`` is closed once ``after_bytes`` of the answer have been passed on."""

    def __init__(self, upstream_port: int, *, cut: Callable[[bytes], bool], after_bytes: int):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.heads: list[bytes] = []  # the first bytes of each request, in arrival order
        self.cuts = 0
        self._upstream = upstream_port
        self._cut = cut
        self._after = after_bytes
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(downstream,), daemon=True).start()

    def _serve(self, downstream: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self._upstream))
        armed: list[int] = []  # bytes left to pass before the cut, once a request asked for it
        threading.Thread(
            target=self._requests, args=(downstream, upstream, armed), daemon=True
        ).start()
        try:
            while chunk := upstream.recv(65536):
                if armed and len(chunk) >= armed[0]:
                    downstream.sendall(chunk[: armed[0]])
                    self.cuts += 1
                    break
                if armed:
                    armed[0] -= len(chunk)
                downstream.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (downstream, upstream):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

    def _requests(self, source: socket.socket, target: socket.socket, armed: list[int]) -> None:
        """Client to server; each request (keep-alive connections carry several) is looked
        at before it is passed on."""
        try:
            while chunk := source.recv(65536):
                if chunk[:8].split(b" ")[0] in (b"GET", b"POST", b"PUT", b"DELETE", b"PATCH"):
                    self.heads.append(chunk)
                    if self._cut(chunk):
                        armed.append(self._after)
                target.sendall(chunk)
        except OSError:
            pass
