"""``laneway keys create|list|set|settle|revoke``: the client keys of ``laneway serve``'s gateway."""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from laneway.cli import bounds
from laneway.cli.app import app, console, console_err
from laneway.governor.buckets import Lane
from laneway.timeparse import human_s

if TYPE_CHECKING:
    from laneway.store import ClientKey, Store

DB_HELP = "Ledger: a path, sqlite:///PATH or postgresql://... [default: .laneway/laneway.db]"

keys_app = typer.Typer(
    name="keys",
    help=(
        "Client keys for the gateway of `laneway serve`.\n\n"
        "A client of `laneway serve` sends its key as its API key "
        "(ANTHROPIC_API_KEY=<key>, with ANTHROPIC_BASE_URL pointing at the server). "
        "On loopback a client may come without one; off loopback every gateway request "
        "needs an active key. Each key can carry a budget in USD (a request is refused "
        "when its worst case would take what the key spent, has in flight and holds past "
        "it), a requests-per-minute limit of its own, and a lane every one of its requests "
        "is put in (interactive or background). Budgets, rates and revokes live in the "
        "ledger: every process and host on it applies them from the next request. "
        "The ledger keeps only a hash of each key: it is shown once, when created."
    ),
    no_args_is_help=True,
)
app.add_typer(keys_app)


def _open(db: str | None) -> Store:
    from laneway.store import StoreSettings, open_store  # SQLAlchemy: only when used

    return open_store(StoreSettings.from_dsn(db))


@keys_app.command("create", short_help="Create a key and print it on stdout.")
def create_command(
    name: str = typer.Argument(..., metavar="NAME", help="A name for the key (who or what uses it)."),
    budget_usd: float | None = typer.Option(None, callback=bounds.above_zero, help="Refuse the key's requests once they have cost this many USD (> 0)."),
    rpm: int | None = typer.Option(None, min=1, help="Requests per minute this key may send: up to N at once, then one every 60/N s (a bucket refilled continuously, as the API's own limits)."),
    lane: Lane | None = typer.Option(None, case_sensitive=False, help="Put every request of this key in this lane."),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """Create a key and print it (stdout, on its own line): KEY=$(laneway keys create NAME).

    The key is shown this once: the ledger keeps only its hash.
    """
    store = _open(db)
    try:
        key, secret = store.create_key(name, budget_usd=budget_usd, rpm=rpm, lane=lane)
    finally:
        store.close()
    sys.stdout.write(secret + "\n")
    sys.stdout.flush()
    console_err.print(f"laneway: key {key.name!r} created ({key.prefix}...). It is shown "
                      "only now: keep it. Clients send it as ANTHROPIC_API_KEY.",
                      highlight=False, soft_wrap=True, markup=False)


@keys_app.command("list", short_help="List the keys: budget, spent, rpm, lane.")
def list_command(
    show_all: bool = typer.Option(False, "--all", help="Include revoked keys."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON (one array) instead of a table."),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """List the keys: name, prefix, budget, spent (settled), reserved (requests in flight,
    at their worst case), held (requests a crash interrupted, at their worst case, until
    `laneway keys settle`), rpm, lane, when made or revoked."""
    store = _open(db)
    try:
        keys = store.list_keys(include_revoked=show_all)
    finally:
        store.close()
    if as_json:
        sys.stdout.write(json.dumps([_as_dict(k) for k in keys], indent=2) + "\n")
        return
    if not keys:
        console_err.print("laneway: no keys yet: create one with `laneway keys create NAME`"
                          if not show_all else "laneway: no keys yet", highlight=False)
        return
    table = Table("name", "prefix", "budget", "spent", "reserved", "held", "rpm", "lane",
                  "created", "revoked")
    now = time.time()
    for k in keys:
        table.add_row(
            k.name, k.prefix, "-" if k.budget_usd is None else f"${k.budget_usd:.2f}",
            f"${k.spent_usd:.4f}", f"${k.reserved_usd:.4f}", f"${k.held_usd:.4f}",
            "-" if k.rpm is None else str(k.rpm),
            k.lane or "-", f"{human_s(now - k.created_at)} ago",
            "-" if k.revoked_at is None else f"{human_s(now - k.revoked_at)} ago")
    console.print(table)


@keys_app.command("set", short_help="Change a live key's budget or rate.")
def set_command(
    ref: str = typer.Argument(..., metavar="NAME_OR_PREFIX", help="The key's name or prefix (see `laneway keys list`)."),
    budget_usd: float | None = typer.Option(None, callback=bounds.above_zero, help="A new budget in USD (> 0)."),
    rpm: int | None = typer.Option(None, min=1, help="A new requests-per-minute limit (a bucket of N, refilled continuously)."),
    no_budget: bool = typer.Option(False, "--no-budget", help="Remove the key's budget."),
    no_rpm: bool = typer.Option(False, "--no-rpm", help="Remove the key's rate limit."),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """Change a live key's budget or rate: its next request, in every process, sees it."""
    from laneway.errors import ConfigError

    if budget_usd is None and rpm is None and not no_budget and not no_rpm:
        raise ConfigError("keys set: give --budget-usd, --rpm, --no-budget or --no-rpm")
    store = _open(db)
    try:
        key = store.set_key(ref, budget_usd=budget_usd, rpm=rpm, clear_budget=no_budget,
                            clear_rpm=no_rpm)
    finally:
        store.close()
    budget = "no budget" if key.budget_usd is None else f"budget ${key.budget_usd:.2f}"
    rate = "no rate limit" if key.rpm is None else f"{key.rpm} requests per minute"
    console_err.print(f"laneway: key {key.name!r} ({key.prefix}...): {budget}, {rate}",
                      highlight=False, soft_wrap=True, markup=False)


@keys_app.command("settle", short_help="Release the holds of interrupted requests.")
def settle_command(
    ref: str = typer.Argument(..., metavar="NAME_OR_PREFIX", help="The key's name or prefix (see `laneway keys list`)."),
    note: str = typer.Option("settled by the operator", help="Why (kept with each row released)."),
    older_than: float | None = typer.Option(None, min=0.0, metavar="SECONDS", help="Also take requests still in flight for longer than this as interrupted (a host that died and was not restarted)."),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """Release a key's holds: requests a crash interrupted are charged their worst case
    until an operator, having checked what the upstream billed, releases them here."""
    store = _open(db)
    try:
        if older_than is not None:
            stale = time.time() - older_than
            store.interrupt_requests(lambda _process, started_at, _holder: started_at < stale)
        key, rows, usd = store.release_holds(ref, note)
    finally:
        store.close()
    console_err.print(f"laneway: key {key.name!r}: released {rows} held request(s), "
                      f"${usd:.4f}", highlight=False, soft_wrap=True, markup=False)


@keys_app.command("revoke", short_help="Revoke a key: its next request is refused.")
def revoke_command(
    ref: str = typer.Argument(..., metavar="NAME_OR_PREFIX", help="The key's name or prefix (see `laneway keys list`)."),
    db: str | None = typer.Option(None, help=DB_HELP),
) -> None:
    """Revoke a key: its next request is refused, in every process, and so are those
    waiting in a lane; its running Message Batches are canceled. Its traffic stays listed."""
    store = _open(db)
    try:
        before = time.time()
        key = store.revoke_key(ref)
    finally:
        store.close()
    state = "was already revoked" if (key.revoked_at or 0.0) < before else "revoked"
    console_err.print(f"laneway: key {key.name!r} ({key.prefix}...) {state}",
                      highlight=False, soft_wrap=True, markup=False)


def _as_dict(k: ClientKey) -> dict[str, object]:
    return {"id": k.id, "name": k.name, "prefix": k.prefix, "budget_usd": k.budget_usd,
            "spent_usd": k.spent_usd, "reserved_usd": k.reserved_usd,
            "held_usd": k.held_usd, "rpm": k.rpm, "lane": k.lane, "created_at": k.created_at,
            "revoked_at": k.revoked_at, "active": k.active}
