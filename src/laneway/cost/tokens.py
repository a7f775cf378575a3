"""Token estimates made before sending (the API's own count comes back in ``usage``)."""

from __future__ import annotations

import json
from typing import Any

#: Characters per token of English text, a common rule of thumb for Claude's tokenizer.
CHARS_PER_TOKEN = 4.0
#: Framing tokens per message.
MESSAGE_OVERHEAD = 4


def _text_len(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        total = 0
        for block in content:
            if isinstance(block, dict):
                if "text" in block and isinstance(block["text"], str):
                    total += len(block["text"])
                else:
                    total += len(json.dumps(block))
        return total
    return 0


def input_tokens(params: dict[str, Any]) -> int:
    """A quick estimate of the input tokens of a Messages API request."""
    chars = _text_len(params.get("system") or "")
    messages = params.get("messages") or []
    for msg in messages:
        if isinstance(msg, dict):
            chars += _text_len(msg.get("content"))
    if params.get("tools"):
        chars += len(json.dumps(params["tools"]))
    return max(1, int(chars / CHARS_PER_TOKEN) + MESSAGE_OVERHEAD * (len(messages) + 1))
