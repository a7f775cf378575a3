"""``laneway serve``: a FastAPI app for people (chat over SSE, a runs dashboard) and for
programs (the runs API), over one provider client and one governor."""

from __future__ import annotations

from laneway.server.app import ServerSettings, create_app
from laneway.server.auth import check_bind

__all__ = ["ServerSettings", "check_bind", "create_app"]
