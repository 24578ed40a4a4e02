"""The gRPC test peers of the Open Inference Protocol (KServe v2, inference.GRPCInferenceService), each a
separate process in the peer venv .peers/grpc (scripts/ensure-peers.sh makes it): the main venv cannot
import MLServer or tritonclient, whose generated `inference` protos collide with each other.

    with MLServerPeer(tmp_path) as peer:      # real `mlserver start` (1.7.1) with tests/peers/mlserver
        ... target=peer.target, model "echo" | "slow" | "notready" | "smollm"
    with TritonPeer(tmp_path, tls=True, require_key="k", delay=0.5) as peer:   # tests/peers/triton_server.py
        ... target=peer.target, model "ensemble" | "notready", CA file peer.ca_path, TLS name peer.server_name

Both answer deterministically (tests/peers/mlserver/runtimes.py and triton_server.py say how): the
prompt's words, " word" after the first, at most max_tokens (16 unless sent), with prompt_tokens,
completion_tokens and finish_reason in the last response's parameters; the word FAIL in the prompt
makes them fail after the first word. `peer.call(spec)` runs tests/peers/oip_call.py in the peer venv
for a check of the peer itself. Readiness is polled over gRPC with hand-encoded messages (a request
of one string field, a reply of one bool), so no generated code is needed here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any, BinaryIO, Self

import grpc

from tests.e2e.harness import free_port, stop_group, wait_ready

ROOT = Path(__file__).resolve().parents[2]
PEERS = ROOT / "tests" / "peers"
PEER_VENV = ROOT / ".peers" / "grpc"
PEER_PYTHON = PEER_VENV / "bin" / "python"
SERVICE = "/inference.GRPCInferenceService/"


def peer_python() -> Path:
    if not PEER_PYTHON.exists():
        raise RuntimeError(f"no peer venv at {PEER_VENV}: run `bash scripts/ensure-peers.sh`")
    return PEER_PYTHON


def _string_field(number: int, value: str) -> bytes:
    """A protobuf length-delimited field (strings under 128 bytes: a one-byte length)."""
    data = value.encode("utf-8")
    if len(data) >= 128:
        raise ValueError("only short strings are encoded here")
    return bytes([number << 3 | 2, len(data)]) + data


def _bool_reply(raw: bytes) -> bool:
    """ServerLiveResponse, ServerReadyResponse, ModelReadyResponse: field 1, a bool (absent when false)."""
    return raw == b"\x08\x01"


class _Peer:
    """A peer process: its own session (so stop() and kill() reach its children), a log file in the
    workdir, readiness polled with a deadline."""

    name = "peer"

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.log_path = workdir / f"{self.name}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None
        self.ca_path: Path | None = None
        self.server_name: str | None = None  # the TLS name its certificate holds
        self.key: str | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def args(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1"}

    def cwd(self) -> Path:
        return self.workdir

    def _ready(self) -> bool:
        raise NotImplementedError

    def start(self, timeout: float = 120.0) -> Self:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.args(), stdout=self._log, stderr=subprocess.STDOUT, env=self.env(),
                                     cwd=self.cwd(), start_new_session=True)
        if wait_ready(self.proc, self._ready, self.name, self.log, timeout):
            return self
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log()}")

    def channel(self) -> grpc.Channel:
        """A plain grpc channel to the peer, TLS when it serves TLS."""
        if self.ca_path is None:
            return grpc.insecure_channel(self.target)
        client = getattr(self, "client_path", None) if getattr(self, "mtls", False) else None
        pem = client.read_bytes() if client is not None else None
        creds = grpc.ssl_channel_credentials(root_certificates=self.ca_path.read_bytes(), private_key=pem,
                                             certificate_chain=pem)
        return grpc.secure_channel(self.target, creds,
                                   options=[("grpc.ssl_target_name_override", self.server_name or "localhost")])

    def _bool_rpc(self, method: str, request: bytes = b"", timeout: float = 1.0) -> bool:
        metadata = [("authorization", f"Bearer {self.key}")] if self.key else None
        try:
            with self.channel() as channel:
                call = channel.unary_unary(SERVICE + method)  # bytes in, bytes out
                return _bool_reply(call(request, timeout=timeout, metadata=metadata))
        except grpc.RpcError:
            return False

    def model_ready(self, model: str) -> bool:
        return self._bool_rpc("ModelReady", _string_field(1, model))

    def server_live(self) -> bool:
        return self._bool_rpc("ServerLive")

    def call(self, spec: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
        """One call through tests/peers/oip_call.py (its docstring describes `spec` and the answer)."""
        args = [str(peer_python()), str(PEERS / "oip_call.py"), "--target", self.target]
        if self.ca_path is not None:
            args += ["--ca", str(self.ca_path), "--server-name", self.server_name or "localhost"]
        if self.key:
            args += ["--key", self.key]
        done = subprocess.run(args, input=json.dumps(spec).encode(), capture_output=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"oip_call.py failed ({done.returncode}):\n{done.stderr.decode(errors='replace')}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        stop_group(self.proc)
        self._close_log()

    def kill(self) -> None:
        """SIGKILL, at once: a server dying mid-stream (its clients see UNAVAILABLE)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MLServerPeer(_Peer):
    """Real MLServer 1.7.1 (`mlserver start tests/peers/mlserver`) with the custom runtimes of
    tests/peers/mlserver/runtimes.py: models echo, slow (0.5 s a word), notready, smollm (SmolLM2-135M
    through llama.cpp). Input `prompt` (BYTES [1]), output `output` (BYTES); sampling settings are
    request parameters. Plain gRPC only: MLServer 1.7.1 cannot serve TLS (it only calls
    add_insecure_port). Ready when every model but notready answers ModelReady true (its ServerReady
    stays false: it is false while any model is not ready)."""

    name = "mlserver"
    MODELS = ("echo", "slow", "notready", "smollm")
    READY_MODELS = ("echo", "slow", "smollm")
    SLOW_DELAY = 0.5  # tests/peers/mlserver/models/slow/model-settings.json

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        super().__init__(workdir, port)
        self.http_port = free_port()
        self.rundir = workdir / f"mlserver-{self.port}"  # its working directory (.metrics, .envs)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def args(self) -> list[str]:
        return [str(peer_python().parent / "mlserver"), "start", str(PEERS / "mlserver")]

    def env(self) -> dict[str, str]:
        # settings.json leaves the ports out, so these (MLServer's settings from the environment) apply
        return {**super().env(), "MLSERVER_GRPC_PORT": str(self.port), "MLSERVER_HTTP_PORT": str(self.http_port)}

    def cwd(self) -> Path:
        self.rundir.mkdir(parents=True, exist_ok=True)
        return self.rundir

    def _ready(self) -> bool:
        return all(self.model_ready(m) for m in self.READY_MODELS)


class TritonPeer(_Peer):
    """tests/peers/triton_server.py: Triton serving a TensorRT-LLM ensemble, as a gateway sees it (model
    `ensemble`, and `notready`). `tls=True` serves TLS with a certificate for localhost and 127.0.0.1
    from a throwaway CA (trustme), whose PEM is `ca_path`; `require_key` makes every RPC need
    `authorization: Bearer KEY`; `delay` is the seconds before each streamed word; `aliases` are more
names the ensemble answers to."""

    name = "triton"
    MODEL = "ensemble"

    def __init__(self, workdir: Path, *, tls: bool = False, require_key: str | None = None, delay: float = 0.0,
                 port: int | None = None, aliases: tuple[str, ...] = (), mtls: bool = False) -> None:
        super().__init__(workdir, port)
        self.aliases = aliases
        self.mtls = mtls  # with tls: clients must show a certificate from the same CA (client_path)
        self.client_path: Path | None = None
        self.tls = tls
        self.key = require_key
        self.delay = delay
        self.cert_path: Path | None = None
        self.key_path: Path | None = None
        if tls:
            self._make_certs()

    def _make_certs(self) -> None:
        import trustme

        ca = trustme.CA()
        cert = ca.issue_cert("localhost", "127.0.0.1")
        certdir = self.workdir / f"triton-{self.port}-tls"
        certdir.mkdir(parents=True, exist_ok=True)
        self.ca_path = certdir / "ca.pem"
        self.cert_path = certdir / "server.pem"
        self.key_path = certdir / "server.key"
        ca.cert_pem.write_to_path(str(self.ca_path))
        cert.private_key_pem.write_to_path(str(self.key_path))
        self.cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        self.server_name = "localhost"
        client = ca.issue_cert("clawdbot-client")  # the certificate and its key in one PEM
        self.client_path = certdir / "client.pem"
        self.client_path.write_bytes(client.private_key_pem.bytes()
                                     + b"".join(blob.bytes() for blob in client.cert_chain_pems))

    def args(self) -> list[str]:
        args = [str(peer_python()), str(PEERS / "triton_server.py"), "--port", str(self.port),
                "--delay", str(self.delay)]
        if self.cert_path is not None and self.key_path is not None:
            args += ["--tls-cert", str(self.cert_path), "--tls-key", str(self.key_path)]
            if self.mtls:
                args += ["--tls-client-ca", str(self.ca_path)]
        if self.key:
            args += ["--require-key", self.key]
        for alias in self.aliases:
            args += ["--alias", alias]
        return args

    def _ready(self) -> bool:
        return f"READY {self.port}" in self.log() and self.server_live()
