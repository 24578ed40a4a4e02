"""A local MCP server as a child process over stdin/stdout. The SDK's own stdio transport always
adds the gateway's HOME, PATH, SHELL, USER, ... to the child's environment; this one gives the child
exactly what the config file lists (docs/mcp.md, "Security"), and bounds each line it reads."""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import NamedTuple

import anyio
import mcp_types as types
from anyio.abc import Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

from clawdbot.config.mcp_schema import McpServer

log = logging.getLogger("clawdbot.mcp")
STOP_GRACE = 2.0  # seconds a server has to exit after its stdin closes, then again after SIGTERM
STDERR_LINE = 500  # characters of a server's stderr line that reach the gateway's log
_ID = re.compile(rb'"id"\s*:\s*(-?\d+|"[^"\\]{0,200}")')


class Launch(NamedTuple):
    """What runs: fixed when the config is loaded, never from a request."""

    argv: tuple[str, ...]
    env: dict[str, str]
    cwd: str | None


def launch_of(server: McpServer, env: Mapping[str, str]) -> Launch:
    """The command found on the gateway's PATH (the child's PATH is only what the allow-list gives
    it), the environment: `env` values and the allow-listed names that are set, nothing else."""
    assert server.command is not None
    command = server.command
    if os.sep not in command:
        found = shutil.which(command, path=env.get("PATH", os.defpath))
        if found is not None:
            command = found
    child = {name: env[name] for name in server.env_allow if name in env}
    child.update(server.env)
    return Launch((command, *server.args), child, server.cwd)


TOO_LARGE = "result_too_large: the server's answer exceeds max_result_bytes"  # the error of a dropped line


def line_limit(max_result_bytes: int) -> int:
    """Bytes of one JSON-RPC line read from a server: a result twice the limit still arrives (and
    is then refused with its size), anything larger is dropped unread."""
    return 2 * max_result_bytes + 64 * 1024


@asynccontextmanager
async def stdio_transport(name: str, launch: Launch, max_line: int, exited: Callable[[], None]
                          ) -> AsyncIterator[tuple[MemoryObjectReceiveStream[SessionMessage | Exception],
                                                   MemoryObjectSendStream[SessionMessage]]]:
    """Streams of JSON-RPC messages to and from the process; `exited` is called when its stdout
    ends (the process died or closed it): the caller restarts it."""
    process = await anyio.open_process(list(launch.argv), env=launch.env, cwd=launch.cwd,
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       start_new_session=True)
    log.info("mcp server %s started (pid %s)", name, process.pid)
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](0)
    async with anyio.create_task_group() as tg:
        tg.start_soon(_read_stdout, name, process, read_send, max_line, exited)
        tg.start_soon(_write_stdin, process, write_recv)
        tg.start_soon(_log_stderr, name, process)
        try:
            yield read_recv, write_send
        finally:
            write_send.close()
            read_recv.close()
            with anyio.CancelScope(shield=True):
                await _stop(name, process)
            tg.cancel_scope.cancel()


async def _read_stdout(name: str, process: Process, out: MemoryObjectSendStream[SessionMessage | Exception],
                       max_line: int, exited: Callable[[], None]) -> None:
    assert process.stdout is not None
    buf = bytearray()
    skipping = False  # inside a line longer than max_line: dropped up to its newline
    try:
        async with out:
            async for chunk in process.stdout:
                buf += chunk
                while True:
                    end = buf.find(b"\n")
                    if end < 0:
                        if len(buf) > max_line and not skipping:
                            await _too_long(name, bytes(buf[:512]), out)
                            skipping = True
                        if skipping:
                            buf.clear()
                        break
                    line = bytes(buf[:end])
                    del buf[:end + 1]
                    if skipping:
                        skipping = False
                        continue
                    if len(line) > max_line:
                        await _too_long(name, line[:512], out)
                        continue
                    if line.strip():
                        await out.send(_parse(name, line))
    except (anyio.ClosedResourceError, anyio.BrokenResourceError):
        pass  # the session is gone: shutting down
    finally:
        exited()


def _parse(name: str, line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        log.warning("mcp server %s wrote a line that is not JSON-RPC (%d bytes)", name, len(line))
        return exc


async def _too_long(name: str, head: bytes, out: MemoryObjectSendStream[SessionMessage | Exception]) -> None:
    """An answer too large to read: its request fails now (the id is near the start of the
    SDK's and most servers' lines) instead of waiting for its timeout."""
    log.warning("mcp server %s wrote a line over the size limit: dropped", name)
    found = _ID.search(head)
    if found is None:
        return
    raw = found.group(1).decode()
    rid: int | str = int(raw) if raw[0] != '"' else raw[1:-1]
    error = types.JSONRPCError(jsonrpc="2.0", id=rid, error=types.ErrorData(
        code=types.INTERNAL_ERROR, message=TOO_LARGE))
    await out.send(SessionMessage(error))


async def _write_stdin(process: Process, messages: MemoryObjectReceiveStream[SessionMessage]) -> None:
    assert process.stdin is not None
    try:
        async with messages:
            async for m in messages:
                data = m.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                await process.stdin.send(data.encode())
    except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
        pass  # the process is gone; the reader reports it
    finally:
        await process.stdin.aclose()


async def _log_stderr(name: str, process: Process) -> None:
    assert process.stderr is not None
    buf = b""
    async for chunk in process.stderr:
        buf = (buf + chunk)[-64 * 1024:]  # bounded: a server that never writes a newline
        *lines, buf = buf.split(b"\n")
        for line in lines:
            if line.strip():
                log.info("mcp server %s: %s", name, line.decode(errors="replace")[:STDERR_LINE])


async def _stop(name: str, process: Process) -> None:
    """Close stdin and wait; then SIGTERM, then SIGKILL (the SDK's order)."""
    if process.stdin is not None:
        await process.stdin.aclose()
    with anyio.move_on_after(STOP_GRACE):
        await process.wait()
        return
    process.terminate()
    with anyio.move_on_after(STOP_GRACE):
        await process.wait()
        return
    process.kill()
    await process.wait()
    log.info("mcp server %s killed", name)
