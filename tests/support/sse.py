"""A small SSE reader for tests: frames as dicts, comments counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Frame:
    event: str | None = None
    id: str | None = None
    data: str = ""
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def parse_lines(lines: Iterator[str]) -> Iterator[Frame]:
    frame = Frame()
    for line in lines:
        if line == "":
            if frame.event or frame.data or frame.comments:
                yield frame
            frame = Frame()
        elif line.startswith(":"):
            frame.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                frame.event = value
            elif name == "id":
                frame.id = value
            elif name == "data":
                frame.data = f"{frame.data}\n{value}" if frame.data else value
            elif name == "retry":
                frame.retry = int(value)
