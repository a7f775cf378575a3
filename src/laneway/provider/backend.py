"""Which backend a command talks to, and opening it: the real API, or the embedded
local API started in-process on a loopback port.

:func:`choose_provider` answers the question without importing the ``anthropic`` SDK
(about 2 s of start-up), so light commands (``laneway estimate``) use it alone;
:func:`open_provider` imports the SDK (through :mod:`laneway.provider.client`, the only module
that calls it) when it is called.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

from laneway.errors import ConfigError

if TYPE_CHECKING:
    from laneway.provider.client import Provider


def choose_provider(provider: str = "auto") -> str:
    """``anthropic`` or ``local`` for ``--provider auto|anthropic|local``."""
    if provider not in ("auto", "anthropic", "local"):
        raise ConfigError(f"--provider {provider!r}: choose auto, anthropic or local")
    if provider != "auto":
        return provider
    if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get("ANTHROPIC_BASE_URL"):
        return "anthropic"
    return "local"


def open_provider(
    provider: str = "auto", *, engine: str | None = None, quiet: bool = False,
    local_config: Any = None,
) -> Provider:
    """Open the backend: the real API when ``ANTHROPIC_API_KEY`` is set (or
    ``ANTHROPIC_BASE_URL`` points at a compatible server), otherwise the embedded local
    API, with one line on stderr saying so (unless ``quiet``)."""
    from laneway.provider.client import Provider, sdk_client

    if choose_provider(provider) == "anthropic":
        key = os.environ.get("ANTHROPIC_API_KEY")
        base_url = os.environ.get("ANTHROPIC_BASE_URL")
        if not key and not base_url:
            raise ConfigError("--provider anthropic needs ANTHROPIC_API_KEY (or "
                              "ANTHROPIC_BASE_URL for a compatible server)")
        client = sdk_client(api_key=key or "none", base_url=base_url)
        url = str(client.base_url).rstrip("/")
        return Provider(client, "anthropic", url, description=f"the API at {url}")
    return _open_local(engine=engine, quiet=quiet, local_config=local_config)


def _open_local(*, engine: str | None, quiet: bool, local_config: Any) -> Provider:
    """Start the embedded local API and a provider on it (stopped by ``aclose``)."""
    from laneway.local import LocalConfig, start_local
    from laneway.local.engines import smollm2_available
    from laneway.provider.client import Provider, sdk_client

    if local_config is None:
        name = engine or os.environ.get("LANEWAY_LOCAL_ENGINE") or (
            "smollm2" if smollm2_available() else "echo")
        local_config = LocalConfig(engine=name)
    running = start_local(local_config)
    label = {"smollm2": "SmolLM2-135M on this machine",
             "echo": "the echo engine"}.get(local_config.engine, local_config.engine)
    description = f"the local API ({label}) at {running.base_url}"
    if not quiet:
        print(f"laneway: no ANTHROPIC_API_KEY: using {description}", file=sys.stderr)
    client = sdk_client(api_key="local", base_url=running.base_url)
    engine_model = getattr(running.api.engine, "model_id", None)
    return Provider(client, "local", running.base_url, description=description,
                    _stop=running.stop, free=local_config.engine != "echo",
                    answers_as=engine_model)
