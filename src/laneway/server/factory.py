"""The app of one ``laneway serve --workers N`` process, made from its settings.

uvicorn starts each worker process afresh and makes its app by calling
:func:`app_from_env` (an import string, as its ``workers`` option needs); the settings
come from the parent in the environment variable :data:`ENV`, as JSON. Each worker has
its own agent, provider client and governor, on the one ledger: they share the
account's limits through it (see :mod:`laneway.governor.quota`).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from fastapi import FastAPI

from laneway.errors import ConfigError
from laneway.governor.buckets import RateLimits
from laneway.server.app import ServerSettings, create_app
from laneway.server.gateway import GatewaySettings
from laneway.server.gateway.admission import WaitLimits

ENV = "LANEWAY_SERVE_SETTINGS"
#: The import string uvicorn's workers make their app with.
FACTORY = "laneway.server.factory:app_from_env"


def dump(settings: ServerSettings) -> str:
    """``settings`` as the JSON :func:`load` reads."""
    data: dict[str, Any] = {f.name: getattr(settings, f.name)
                            for f in dataclasses.fields(settings)}
    data["db"] = None if settings.db is None else str(settings.db)
    data["limits"] = dataclasses.asdict(settings.limits) if settings.limits else None
    waits = settings.gateway.waits
    data["gateway"] = {"interactive_s": waits.interactive_s,
                       "background_s": waits.background_s,
                       "upstream_timeout_s": settings.gateway.upstream_timeout_s,
                       "require_key": settings.gateway.require_key,
                       "public_url": settings.gateway.public_url,
                       "cancel_wait_s": settings.gateway.cancel_wait_s,
                       "anonymous": settings.gateway.anonymous}
    return json.dumps(data)


def load(text: str) -> ServerSettings:
    data = json.loads(text)
    g = data.pop("gateway")
    limits = data.pop("limits")
    return ServerSettings(
        **data, limits=RateLimits(**limits) if limits else None,
        gateway=GatewaySettings(waits=WaitLimits(g["interactive_s"], g["background_s"]),
                                upstream_timeout_s=g["upstream_timeout_s"],
                                require_key=g["require_key"], public_url=g["public_url"],
                                cancel_wait_s=g["cancel_wait_s"],
                                anonymous=g.get("anonymous", True)))


def app_from_env() -> FastAPI:
    """The app of this worker process (see the module docstring)."""
    from laneway.heap import freeze_startup_objects

    text = os.environ.get(ENV)
    if not text:
        raise ConfigError(f"{ENV} is not set: this factory is for `laneway serve --workers`")
    app = create_app(load(text))
    freeze_startup_objects()
    return app
