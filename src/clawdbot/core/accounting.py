"""Token and time-to-first-token accounting: the one place that writes a request's counts into its
context, whoever relays the answer (the /v1 relays, the chat page's runs, providers that read usage
from a body). Metering settles from these fields, the access log prints them.

A stream is counted by its output events (one token each, docs/limits.md) until the upstream's
usage arrives, which then wins; the first output event is the first token."""

from __future__ import annotations

import time
from collections.abc import Callable

from clawdbot.core.context import RequestContext
from clawdbot.core.types import ChatChunk


def output(ctx: RequestContext) -> bool:
    """One output event (content, tool call or reasoning) is about to reach the client. False: it
    would be one more than the request's completion cap allows (the caller cuts the stream)."""
    if ctx.chunks == ctx.completion_cap:
        return False
    ctx.chunks += 1
    if ctx.first_token_at is None:
        ctx.first_token_at = time.perf_counter()
    return True


def chunk(ctx: RequestContext, c: ChatChunk) -> bool:
    """A canonical chunk about to reach the client: its output event counted against the cap
    (False: over it, nothing else counted, the caller ends the answer there), then the usage it
    carries and the model that answered."""
    if (c.content or c.tool_calls or c.reasoning) and not output(ctx):
        return False
    if c.usage is not None:
        usage(ctx, c.usage.prompt_tokens, c.usage.completion_tokens)
    if ctx.response_model is None:
        answered_by(ctx, c.model)
    return True


def usage(ctx: RequestContext, prompt: int, completion: int) -> None:
    """What the upstream reported (a stream's usage event, a body's usage object)."""
    ctx.prompt_tokens = prompt
    ctx.completion_tokens = completion


MAX_MODEL_NAME = 256  # an upstream's answer names its model; longer is not a model name


def answered_by(ctx: RequestContext, model: str | None) -> None:
    """The model the upstream's answer names (OpenAI's `model`, Anthropic's message.model): the
    first one a request sees, for gen_ai.response.model and the request log."""
    if model and ctx.response_model is None and len(model) <= MAX_MODEL_NAME:
        ctx.response_model = model


def prompt(ctx: RequestContext, tokens: int) -> None:
    """The prompt's count, reported before the answer's (Anthropic's message_start)."""
    ctx.prompt_tokens = tokens


def answered(ctx: RequestContext, prompt: int | None = None, completion: int | None = None) -> None:
    """A whole answer is ready for the client (not a stream): its first token is now."""
    if ctx.first_token_at is None:
        ctx.first_token_at = time.perf_counter()
    if prompt is not None:
        ctx.prompt_tokens = prompt
    if completion is not None:
        ctx.completion_tokens = completion


def unreported(ctx: RequestContext, prompt_estimate: Callable[[], int]) -> None:
    """The answer is over and the upstream sent no usage (llama.cpp's server ignores
    stream_options), or the gateway cut the stream before it came: one token per output event and
    the prompt's estimate, marked as estimated."""
    if ctx.first_token_at is None:  # nothing was answered: nothing to count
        return
    if ctx.completion_tokens is None:
        ctx.completion_tokens = ctx.chunks
        ctx.tokens_estimated = True
    if ctx.prompt_tokens is None:
        ctx.prompt_tokens = prompt_estimate()
        ctx.tokens_estimated = True
