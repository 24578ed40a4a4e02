"""Outbound proxies: a real one (Debian's tinyproxy) in front of scripted origins, plain http in
absolute form and https through CONNECT with end-to-end TLS, with and without credentials; and
which proxy the environment picks (HTTP(S)_PROXY, NO_PROXY, loopback never)."""

from __future__ import annotations

import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from clawdbot.config.proxy import parse_proxy, proxy_for
from clawdbot.core.context import RequestContext
from clawdbot.core.errors import UpstreamUnavailable
from clawdbot.providers.http import UpstreamHTTP
from tests.e2e.harness import free_port
from tests.providers.scripted import Server, client, fetch_json, ok, run

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"


class Tinyproxy:
    def __init__(self, tmp: Path, auth: tuple[str, str] | None = None) -> None:
        tinyproxy = shutil.which("tinyproxy")
        assert tinyproxy, "Debian's tinyproxy is required (scripts/ensure-services.sh installs it)"
        self.port = free_port()
        self.log = tmp / f"tinyproxy-{self.port}.log"
        conf = tmp / f"tinyproxy-{self.port}.conf"
        lines = [f"Port {self.port}", "Listen 127.0.0.1", "Timeout 30", "MaxClients 20", "Allow 127.0.0.1",
                 "LogLevel Info", f"LogFile \"{self.log}\""]
        if auth:
            lines.append(f"BasicAuth {auth[0]} {auth[1]}")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([tinyproxy, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL,
                                     stderr=(tmp / f"tinyproxy-{self.port}.err").open("wb"))
        deadline = time.monotonic() + 10
        while True:
            assert self.proc.poll() is None, "tinyproxy exited at start"
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "tinyproxy did not start listening"
                time.sleep(0.05)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    p = Tinyproxy(tmp_path_factory.mktemp("proxy"))
    yield p
    p.stop()


@pytest.fixture(scope="module")
def auth_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tinyproxy]:
    p = Tinyproxy(tmp_path_factory.mktemp("proxy-auth"), ("alice", "s3cret-pw"))
    yield p
    p.stop()


async def fetch(http: UpstreamHTTP, path: str = "/v1/x") -> bytes:
    return await fetch_json(http, path)


def tls_origin(tmp_path: Path) -> tuple[ssl.SSLContext, dict[str, str]]:
    """A server context for `localhost` from a fresh test CA, and the `tls` settings that trust it."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    return ctx, {"ca_bundle": str(tmp_path / "ca.pem")}


def test_plain_http_goes_through_the_proxy_in_absolute_form(proxy: Tinyproxy) -> None:
    async def main() -> None:
        async with Server(ok) as srv:
            http = client(srv.url + "/v1", proxy=f"http://127.0.0.1:{proxy.port}")
            try:
                assert await fetch(http, "/chat") == b"{}"
                assert http.connections()["opened"] == 1
                assert http.connections()["via"] == f"127.0.0.1:{proxy.port}"  # as /debug shows it
            finally:
                await http.close()
            (req,) = srv.requests
            assert req.startswith(b"POST /v1/chat HTTP/1.1\r\n")  # the proxy turned it back into origin form
            assert b"Proxy-Authorization" not in req
            assert srv.url.removeprefix("http://") in proxy.log.read_text()  # it went through the proxy

    run(main)


def test_https_goes_through_a_connect_tunnel_with_tls_to_the_origin(proxy: Tinyproxy, tmp_path: Path) -> None:
    ctx, tls = tls_origin(tmp_path)

    async def main() -> None:
        async with Server(ok, tls=ctx) as srv:
            http = client(srv.url, proxy=f"http://127.0.0.1:{proxy.port}", tls=tls)
            try:
                assert await fetch(http) == b"{}"
                assert await fetch(http) == b"{}"  # the tunnel is a kept-alive connection like any other
                assert srv.connections == 1
            finally:
                await http.close()
        assert "CONNECT" in proxy.log.read_text()

    run(main)


def test_proxy_credentials_from_the_url_and_a_clear_error_without_them(auth_proxy: Tinyproxy, tmp_path: Path) -> None:
    ctx, tls = tls_origin(tmp_path)
    good = f"http://alice:s3cret%2Dpw@127.0.0.1:{auth_proxy.port}"  # percent-encoded, as URLs may be
    bad = f"http://127.0.0.1:{auth_proxy.port}"

    async def main() -> None:
        async with Server(ok) as plain, Server(ok, tls=ctx) as secure:
            for srv, extra in ((plain, {}), (secure, {"tls": tls})):
                http = client(srv.url, proxy=good, **extra)
                try:
                    assert await fetch(http) == b"{}"
                finally:
                    await http.close()
            refused = client(secure.url, proxy=bad, tls=tls)
            try:
                with pytest.raises(UpstreamUnavailable, match=r"refused the tunnel.*407") as err:
                    await fetch(refused)
                assert "s3cr" not in str(err.value)
            finally:
                await refused.close()
            anonymous = client(plain.url, proxy=bad)
            try:
                resp = await anonymous.open("POST", "/x", RequestContext("t"), body=b"{}")
                assert resp.status == 407  # the proxy's own answer, passed on as an upstream status
                resp.close()
            finally:
                await anonymous.close()

    run(main)


def test_the_environment_picks_the_proxy_and_no_proxy_and_loopback_bypass_it() -> None:
    env = {"HTTPS_PROXY": "http://corp:3128", "http_proxy": "http://plain:8080",
           "NO_PROXY": "internal.example,.svc,10.0.0.0/8,[::2]:8443"}
    assert proxy_for("https://api.openai.com/v1", None, env) == parse_proxy("http://corp:3128")
    assert proxy_for("http://vllm.example:8000", None, env) == parse_proxy("http://plain:8080")
    for direct in ("https://internal.example", "https://a.b.internal.example", "http://x.svc:80",
                   "http://10.1.2.3:8000", "https://[::2]:8443", "http://127.0.0.1:11434", "http://localhost:8080",
                   "http://[::1]:9000", "http://ollama.localhost:11434"):
        assert proxy_for(direct, None, env) is None, direct
    assert proxy_for("https://[::2]:9443", None, env) is not None  # another port of a host:port entry
    assert proxy_for("https://notinternal.example", None, env) is not None  # a suffix, not a substring
    assert proxy_for("https://x.example", None, {"HTTPS_PROXY": "http://c:1", "no_proxy": "*"}) is None
    assert proxy_for("https://x.example", None, {"ALL_PROXY": "http://all:1"}) == parse_proxy("http://all:1")
    # a service's own setting wins over the environment, loopback included; "direct" turns it off
    assert proxy_for("http://127.0.0.1:1", "http://mine:3128", env) == parse_proxy("http://mine:3128")
    assert proxy_for("https://api.openai.com", "direct", env) is None


def test_proxy_urls_are_checked_and_never_show_their_credentials() -> None:
    p = parse_proxy("http://u%40x:p%3Aw@proxy.example:3128")
    assert p.display == "proxy.example:3128" and p.auth == "Basic dUB4OnA6dw=="  # base64("u@x:p:w")
    assert parse_proxy("proxy.example").port == 80
    for bad, why in (("https://p:443", "only http://"), ("socks5://p:1080", "only http://"),
                     ("http://:3128", "no host"), ("http://p:3128/path", "without a path"),
                     ("http://p:99999", "out of range")):
        with pytest.raises(ValueError, match=why):
            parse_proxy(bad)


def test_a_proxy_that_is_down_is_an_unreachable_service() -> None:
    async def main() -> None:
        async with Server(ok) as srv:
            http = client(srv.url, proxy=f"http://127.0.0.1:{free_port()}")
            try:
                with pytest.raises(UpstreamUnavailable, match="could not connect"):
                    await fetch(http)
                assert srv.requests == []
            finally:
                await http.close()

    run(main)
