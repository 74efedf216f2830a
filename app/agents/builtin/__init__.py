"""Built-in agents: chat, assistant (tool loop) and approval (human in the loop)."""

from app.agents.builtin.approval import approval
from app.agents.builtin.assistant import assistant
from app.agents.builtin.chat import chat

BUILTIN_AGENTS = [chat, assistant, approval]
