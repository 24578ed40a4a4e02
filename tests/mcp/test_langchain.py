"""LangChain, a client we did not write, gets an agent from the gateway with one header: its
ChatOpenAI sends `X-Clawdbot-Tools: mcp` and the gateway runs the MCP tools (docs/mcp.md's
example). The gateway, the model (the OpenAI test upstream, which calls the tool the prompt names)
and the tools (mcp-server-time over stdio) are test_agent.py's."""

from __future__ import annotations

from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI

from tests.e2e.harness import GatewayProcess
from tests.mcp.conftest import MASTER
from tests.mcp.test_agent import NOW, gw  # noqa: F401  (its gateway; `upstream` is conftest's)
from tests.upstreams.openai_server import OpenAIUpstream


def chat(gateway: GatewayProcess, **kw: object) -> ChatOpenAI:
    return ChatOpenAI(base_url=gateway.url + "/v1", api_key=MASTER, model="chat", max_retries=0,  # type: ignore[arg-type]
                      default_headers={"X-Clawdbot-Tools": "mcp"}, **kw)  # type: ignore[arg-type]


def test_langchain_invoke_gets_the_answer_made_with_the_tool(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:  # noqa: F811
    upstream.reset()
    answer = chat(gw).invoke(f"What time is it? {NOW}")
    assert isinstance(answer, AIMessage)
    assert str(answer.content).startswith("tool result: ") and "UTC" in str(answer.content)
    assert not answer.tool_calls  # the gateway ran them: LangChain sees a plain answer
    assert answer.usage_metadata is not None and answer.usage_metadata["output_tokens"] > 0


def test_langchain_stream_gets_the_answer_made_with_the_tool(gw: GatewayProcess, upstream: OpenAIUpstream) -> None:  # noqa: F811
    upstream.reset()
    chunks = list(chat(gw, stream_usage=True).stream(f"And now? {NOW}"))
    assert chunks and all(isinstance(c, AIMessageChunk) for c in chunks)
    text = "".join(str(c.content) for c in chunks)
    assert text.startswith("tool result: ") and "UTC" in text
    assert not any(c.tool_call_chunks for c in chunks)
