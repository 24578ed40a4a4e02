"""A gRPC service's channels: HTTP/2 connections kept open and shared by its calls.

A channel carries up to `max_streams` calls at once; more open another channel (each its own
connection: `grpc.use_local_subchannel_pool`), up to `max_channels`. Beyond that a call waits for a
stream, at most the service's `limits.queue_timeout`, then fails as local overload (503, never
counted against the service's breaker), as the HTTP pool does. Channels are made in the event loop
that uses them (grpc.aio binds a channel to its loop), at the first call.

TLS (`grpcs://`): the system's CAs or `tls.ca_bundle`, a client certificate for mutual TLS.
Keep-alive pings every `keepalive` seconds find a dead connection before a request does. Outbound
proxies follow the HTTP services' rules (config/proxy.py: a service's `proxy`, else the environment,
never for loopback); grpc's own reading of the environment is turned off so the two never differ."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio

from clawdbot.config.grpc_schema import GrpcSettings, GrpcTarget
from clawdbot.config.proxy import proxy_for
from clawdbot.config.schema import Service
from clawdbot.core.errors import Overloaded


@dataclass
class Slot:
    """A channel, its calls in flight, and its multi-callables (made once: one per method)."""

    channel: grpc.aio.Channel
    streams: int = 0
    methods: dict[str, Any] = field(default_factory=dict)

    def stream_stream(self, path: str, serializer: Callable[[Any], bytes]) -> Any:
        m = self.methods.get(path)
        if m is None:
            m = self.methods[path] = self.channel.stream_stream(path, request_serializer=serializer)
        return m

    def unary_unary(self, path: str, serializer: Callable[[Any], bytes], deserializer: Callable[[bytes], Any]) -> Any:
        m = self.methods.get(path)
        if m is None:
            m = self.methods[path] = self.channel.unary_unary(path, request_serializer=serializer,
                                                              response_deserializer=deserializer)
        return m


def _read(path: str | None) -> bytes | None:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def credentials(svc: Service) -> grpc.ChannelCredentials:
    tls = svc.tls
    if tls is None:
        return grpc.ssl_channel_credentials()
    cert = _read(tls.client_cert)
    key = _read(tls.client_key) if tls.client_key else cert  # a PEM holding both, as the HTTP client takes it
    return grpc.ssl_channel_credentials(root_certificates=_read(tls.ca_bundle), private_key=key if cert else None,
                                        certificate_chain=cert)


def proxy_option(target: GrpcTarget, setting: str | None) -> tuple[str, str] | None:
    """grpc's `grpc.http_proxy` for this service, or None for a direct connection."""
    url = f"{'https' if target.tls else 'http'}://{target.address}"
    via = proxy_for(url, setting)
    if via is None:
        return None
    userinfo = ""
    if via.auth is not None:
        userinfo = base64.b64decode(via.auth.removeprefix("Basic ")).decode() + "@"
    return ("grpc.http_proxy", f"http://{userinfo}{via.display}")


def channel_options(svc: Service, target: GrpcTarget, g: GrpcSettings) -> list[tuple[str, Any]]:
    opts: list[tuple[str, Any]] = [
        ("grpc.use_local_subchannel_pool", 1),  # each channel its own connection
        ("grpc.max_receive_message_length", svc.max_response_bytes),
        ("grpc.max_send_message_length", 64 * 1024 * 1024),
        ("grpc.primary_user_agent", "clawdbot"),
    ]
    if g.keepalive > 0:
        opts += [
            ("grpc.keepalive_time_ms", int(g.keepalive * 1000)),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.max_pings_without_data", 0),
        ]
    proxy = proxy_option(target, svc.proxy)
    opts.append(proxy if proxy is not None else ("grpc.enable_http_proxy", 0))
    return opts


class Channels:
    def __init__(self, svc: Service, target: GrpcTarget, g: GrpcSettings) -> None:
        self.name = svc.name
        self.target = target
        self.max_streams = g.max_streams
        self.max_channels = g.max_channels
        self.wait_timeout = svc.limits.queue_timeout
        self._options = channel_options(svc, target, g)
        self._credentials = credentials(svc) if target.tls else None
        self._slots: list[Slot] = []
        self._freed: asyncio.Event | None = None
        self.waits = 0  # calls that found every stream taken (for /debug)

    def _open(self) -> Slot:
        if self._credentials is not None:
            ch = grpc.aio.secure_channel(self.target.address, self._credentials, options=self._options)
        else:
            ch = grpc.aio.insecure_channel(self.target.address, options=self._options)
        slot = Slot(ch)
        self._slots.append(slot)
        return slot

    def _free_slot(self) -> Slot | None:
        best = min(self._slots, key=lambda s: s.streams, default=None)
        if best is not None and best.streams < self.max_streams:
            return best
        if len(self._slots) < self.max_channels:
            return self._open()
        return None

    @contextlib.asynccontextmanager
    async def stream(self) -> AsyncIterator[Slot]:
        """A channel with a stream free for one call, held until the block ends."""
        slot = self._free_slot()
        if slot is None:
            slot = await self._wait()
        slot.streams += 1
        try:
            yield slot
        finally:
            slot.streams -= 1
            if self._freed is not None:
                self._freed.set()

    async def _wait(self) -> Slot:
        self.waits += 1
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_timeout
        while True:
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._freed.wait(), left)
            slot = self._free_slot()
            if slot is not None:
                return slot
        raise Overloaded(f"service {self.name!r}: all {self.max_channels * self.max_streams} gRPC streams "
                         f"({self.max_channels} channels x {self.max_streams}) stayed busy for {self.wait_timeout:g} s",
                         headers={"Retry-After": "1"})

    def stats(self) -> dict[str, Any]:
        states = []
        for s in self._slots:
            try:
                states.append(s.channel.get_state(try_to_connect=False).name.lower())
            except Exception:  # a closed channel
                states.append("closed")
        return {"target": self.target.address, "tls": self.target.tls, "channels": len(self._slots),
                "streams": [s.streams for s in self._slots], "states": states, "max_streams": self.max_streams,
                "max_channels": self.max_channels, "waits": self.waits}

    async def close(self) -> None:
        slots, self._slots = self._slots, []
        for s in slots:
            await s.channel.close(grace=None)
