"""``laneway chat``: a streaming chat in the terminal.

Answers print as they are generated, followed by a dim line with the time to first
token, tokens per second, tokens and cost. Ctrl-C stops the answer being written (the
request upstream is cancelled and the half answer is not kept) and returns to the
prompt; Ctrl-C twice at the prompt, Ctrl-D, or ``/quit`` leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from laneway.cli.app import app, console, console_err
from laneway.cost.answered import substituted, usd
from laneway.errors import LanewayError, ProviderError
from laneway.jobs.formats import DEFAULT_MODEL

if TYPE_CHECKING:
    from laneway.chat import Conversation, Turn

HELP = """\
Commands:
  /reset        forget the conversation (keeps the system prompt)
  /save FILE    write the conversation as JSON
  /help         this help
  /quit         leave (so do Ctrl-D, and Ctrl-C twice at the prompt)
Ctrl-C while an answer is being written stops it."""


def stats_line(turn: Turn) -> str:
    """``ttft 120 ms · 45.2 tok/s · 12 in / 30 out tokens · $0.0001``."""
    ttft = "–" if turn.ttft_s is None else f"{turn.ttft_s * 1000:.0f} ms"
    speed = "–" if turn.tokens_per_s is None else f"{turn.tokens_per_s:.1f}"
    cost = "cost unknown" if turn.cost_usd is None else f"${turn.cost_usd:.4f}"
    parts = [f"ttft {ttft}", f"{speed} tok/s",
             f"{turn.input_tokens:,} in / {turn.output_tokens:,} out tokens", cost]
    if turn.attempts > 1:
        parts.append(f"{turn.attempts} attempts")
    if turn.stop_reason not in (None, "end_turn"):
        parts.append(str(turn.stop_reason))
    if turn.note:  # what the model asked for would have cost
        parts.append(f"on {turn.model}: {usd(turn.asked_cost_usd)}")
    return " · ".join(parts)


def header(model: str, answers_as: str | None, *, free: bool) -> str:
    """``laneway chat · claude-haiku-4-5 · ...``, or both models when another answers."""
    named = model
    if answers_as is not None and substituted(model, answers_as):
        named = f"asked {model}; answered by {answers_as}" + (", local, $0" if free else "")
    return f"laneway chat · {named} · /help for commands"


class TerminalChat:
    """The read-answer loop; one event loop for the whole session (one HTTP client)."""

    def __init__(self, conv: Conversation, *, out: Console, err: Console) -> None:
        self.conv = conv
        self.out = out
        self.err = err

    def read(self) -> str | None:
        """The next line; ``None`` to leave (Ctrl-D, or Ctrl-C twice in a row)."""
        interrupted = False
        while True:
            try:
                return input("you> ")
            except EOFError:
                self.out.print()
                return None
            except KeyboardInterrupt:
                if interrupted:
                    self.out.print()
                    return None
                interrupted = True
                self.out.print("\n[dim](Ctrl-C again, Ctrl-D or /quit to leave)[/dim]")

    def command(self, line: str) -> bool:
        """Run a /command; returns False to leave."""
        try:
            name, *args = shlex.split(line)
        except ValueError as exc:
            self.err.print(f"[red]{exc}[/red]", highlight=False)
            return True
        if name in ("/quit", "/exit", "/q"):
            return False
        if name == "/reset":
            self.conv.reset()
            self.out.print("[dim]conversation reset[/dim]")
        elif name == "/save":
            if len(args) != 1:
                self.err.print("[red]usage: /save FILE[/red]")
            else:
                try:
                    path = self.conv.save(args[0])
                except OSError as exc:
                    self.err.print(f"[red]cannot save {args[0]}: {exc.strerror}[/red]",
                                   highlight=False)
                else:
                    self.out.print(f"[dim]saved {len(self.conv.turns)} turns to {path}[/dim]",
                                   highlight=False)
        elif name in ("/help", "/?"):
            self.out.print(HELP, markup=False, highlight=False)
        else:
            self.err.print(f"[red]unknown command {name}[/red] (try /help)", highlight=False)
        return True

    async def answer(self, text: str) -> Turn:
        def show(delta: str) -> None:
            sys.stdout.write(delta)
            sys.stdout.flush()

        return await self.conv.send(text, on_text=show)

    def loop(self, runner: asyncio.Runner) -> None:
        while True:
            line = self.read()
            if line is None:
                return
            line = line.strip()
            if not line:
                continue
            if line.startswith("/"):
                if not self.command(line):
                    return
                continue
            try:
                # Runner.run cancels the task on Ctrl-C (closing the stream upstream)
                # and then raises KeyboardInterrupt here.
                turn = runner.run(self.answer(line))
            except KeyboardInterrupt:
                self.out.print("\n[yellow]stopped[/yellow] [dim](not kept in the "
                               "conversation)[/dim]")
                continue
            except ProviderError as exc:
                self.out.print()
                self.err.print(f"[red]error:[/red] {exc.as_wire_error()['type']}: {exc}",
                               highlight=False, soft_wrap=True)
                continue
            except LanewayError as exc:
                self.err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
                continue
            self.out.print()
            self.out.print(f"[dim]{stats_line(turn)}[/dim]", highlight=False)


async def _warm_up(conv: Conversation) -> None:
    """Have the embedded local API load its model now (counting a prompt's tokens does):
    the line it prints on loading then comes before the chat, never inside an answer."""
    with contextlib.suppress(Exception):  # a failure shows at the first question
        await conv.provider.client.messages.count_tokens(
            model=conv.model, messages=[{"role": "user", "content": "hello"}])


@app.command("chat")
def chat_command(
    model: str = typer.Option(DEFAULT_MODEL, help="Model to talk to."),
    system: str | None = typer.Option(None, help="System prompt."),
    max_tokens: int = typer.Option(1024, min=1, help="Longest answer, in tokens."),
    provider: str = typer.Option("auto", help="auto, anthropic (needs ANTHROPIC_API_KEY) or local (embedded model)."),
) -> None:
    """Chat in the terminal, with answers streamed as they are written.

    Type /help for commands. Ctrl-C stops an answer; Ctrl-D or /quit leaves.
    """
    from laneway.chat import Conversation
    from laneway.heap import freeze_startup_objects
    from laneway.provider.backend import open_provider

    backend = open_provider(provider)
    freeze_startup_objects()
    conv = Conversation(backend, model=model, system=system, max_tokens=max_tokens)
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    with asyncio.Runner() as runner:
        try:
            if backend.is_local:  # its notices (loading the model) before the first prompt
                runner.run(_warm_up(conv))
            shown = header(model, backend.answers_as, free=backend.costs_nothing)
            console_err.print(f"[dim]{shown}[/dim]", highlight=False)
            TerminalChat(conv, out=console, err=console_err).loop(runner)
        finally:
            runner.run(backend.aclose())
