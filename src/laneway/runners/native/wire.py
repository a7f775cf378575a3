"""The wire side of native Message Batches: batch custom_ids and request bytes.

A job goes into a batch under a safe id made from its seq and the ledger's batch id,
``j{seq}_{batch}``: the user's own ``custom_id`` may not match the API's
``^[a-zA-Z0-9_-]{1,64}$``, and the batch part makes every request id unique to one
submission, so a result can never be filed under the wrong batch (nor a batch found
by ``list`` be mistaken for another one).

Sizes are measured on the bytes the SDK sends: it encodes a body as compact JSON with
``ensure_ascii=False``, and so does :func:`encode_request`.

The SDK calls themselves are the provider's (:mod:`laneway.provider.batches`).
"""

from __future__ import annotations

import json
import re
from typing import Any

_CUSTOM_ID = re.compile(r"^j(\d+)_([a-z0-9]+)$")


def batch_custom_id(seq: int, batch_id: str) -> str:
    return f"j{seq}_{batch_id}"


def parse_custom_id(custom_id: str) -> tuple[int, str] | None:
    """``(seq, batch_id)`` of a batch custom_id laneway made, else ``None``."""
    m = _CUSTOM_ID.match(custom_id)
    return (int(m.group(1)), m.group(2)) if m else None


def encode_request(seq: int, batch_id: str, params: dict[str, Any]) -> bytes:
    """One request of a batch body, exactly as the SDK encodes it."""
    item = {"custom_id": batch_custom_id(seq, batch_id), "params": params}
    return json.dumps(item, ensure_ascii=False, separators=(",", ":")).encode()
