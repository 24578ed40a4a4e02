"""TLS to upstreams with a throw-away CA (trustme): a private CA through `tls.ca_bundle`, client
certificates (mTLS), and the failures a user must be able to read: an unknown CA, a server that
wants a certificate the gateway does not have."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from clawdbot.core.errors import GatewayError, UpstreamUnavailable
from clawdbot.providers.http import UpstreamHTTP
from tests.providers.scripted import Server, client, fetch_json, ok, run


async def fetch(http: UpstreamHTTP) -> bytes:
    return await fetch_json(http)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def files(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    client_cert = ca.issue_cert("gateway@clawdbot.test")
    client_cert.private_key_pem.write_to_path(str(d / "client.key"))
    with (d / "client.pem").open("wb") as f:
        for blob in client_cert.cert_chain_pems:
            f.write(blob.bytes())
    other = trustme.CA().issue_cert("stranger@clawdbot.test")
    other.private_key_and_cert_chain_pem.write_to_path(str(d / "stranger.pem"))
    return {"ca": str(d / "ca.pem"), "cert": str(d / "client.pem"), "key": str(d / "client.key"),
            "stranger": str(d / "stranger.pem")}


def server_ctx(ca: trustme.CA, require_client: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(ctx)
    if require_client:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ca.configure_trust(ctx)
    return ctx


def test_a_private_ca_in_ca_bundle_is_trusted_and_verified(ca: trustme.CA, files: dict[str, str]) -> None:
    async def main() -> None:
        async with Server(ok, tls=server_ctx(ca)) as srv:
            http = client(srv.url, tls={"ca_bundle": files["ca"]})
            try:
                assert await fetch(http) == b"{}"
                assert await fetch(http) == b"{}"
                assert srv.connections == 1  # kept alive over TLS
            finally:
                await http.close()

    run(main)


def test_an_unknown_ca_is_refused_with_the_reason(ca: trustme.CA) -> None:
    async def main() -> None:
        async with Server(ok, tls=server_ctx(ca)) as srv:
            http = client(srv.url)  # the system's trust store: the test CA is not in it
            try:
                with pytest.raises(UpstreamUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
                    await fetch(http)
                assert srv.requests == []
            finally:
                await http.close()

    run(main)


def test_mutual_tls_sends_the_client_certificate(ca: trustme.CA, files: dict[str, str]) -> None:
    async def main() -> None:
        async with Server(ok, tls=server_ctx(ca, require_client=True)) as srv:
            http = client(srv.url, tls={"ca_bundle": files["ca"], "client_cert": files["cert"],
                                        "client_key": files["key"]})
            try:
                assert await fetch(http) == b"{}"
            finally:
                await http.close()

    run(main)


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_a_server_that_wants_another_certificate_fails_the_request(ca: trustme.CA, files: dict[str, str],
                                                                    who: str) -> None:
    tls = {"ca_bundle": files["ca"]} | ({"client_cert": files["stranger"]} if who == "stranger" else {})

    async def main() -> None:
        async with Server(ok, tls=server_ctx(ca, require_client=True)) as srv:
            http = client(srv.url, tls=tls)
            try:
                with pytest.raises(GatewayError) as err:  # TLS 1.3: refused at the handshake or the first read
                    await fetch(http)
                assert err.value.status in (502, 503)
                assert srv.requests == []
            finally:
                await http.close()

    run(main)


def test_tls_settings_are_checked_when_the_config_loads(tmp_path: Path, files: dict[str, str]) -> None:
    from clawdbot.config.loader import ConfigError, load_config

    def load(service: str) -> str:
        path = tmp_path / "c.yaml"
        path.write_text(f"services:\n  - name: s\n    type: openai\n{service}models:\n  m: [s]\n")
        with pytest.raises(ConfigError) as err:
            load_config(str(path))
        return str(err.value)

    missing = load("    endpoint: https://h.example\n    tls:\n      ca_bundle: /nonexistent/ca.pem\n")
    assert "c.yaml:6" in missing and "no such file" in missing
    plain = load(f"    endpoint: http://h.example\n    tls:\n      ca_bundle: {files['ca']}\n")
    assert "applies to https and grpcs endpoints" in plain
    key_only = load(f"    endpoint: https://h.example\n    tls:\n      client_key: {files['key']}\n")
    assert "needs `client_cert`" in key_only
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    unloadable = load(f"    endpoint: https://h.example\n    tls:\n      ca_bundle: {garbage}\n")
    assert "cannot load the TLS files" in unloadable
