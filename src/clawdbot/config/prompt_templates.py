"""How a chat becomes one prompt string for a server that takes text (gRPC inference servers): a
built-in format by name, or a Jinja chat template as models ship them (tokenizer_config.json's
`chat_template`, rendered with `messages`, `add_generation_prompt`, `bos_token`, `eos_token`).

Messages here are plain {"role", "content"} dicts (roles system, user, assistant), so this stays in
the config layer: the loader compiles a service's template to check it, the provider renders with
it. Each format also names the strings that end a turn, which the provider treats as stop
sequences (a model that prints its end-of-turn marker as text stops there)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Messages = list[dict[str, str]]
DEFAULT = "chatml"


@dataclass(frozen=True)
class Template:
    name: str
    render: Callable[[Messages, str, str], str]  # (messages, bos_token, eos_token) -> prompt
    stop: tuple[str, ...] = ()


def _chatml(messages: Messages, bos: str, eos: str) -> str:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return bos + turns + "<|im_start|>assistant\n"


def _llama3(messages: Messages, bos: str, eos: str) -> str:
    turns = "".join(f"<|start_header_id|>{m['role']}<|end_header_id|>\n\n{m['content'].strip()}<|eot_id|>"
                    for m in messages)
    return bos + turns + "<|start_header_id|>assistant<|end_header_id|>\n\n"


def _system_into_first_user(messages: Messages) -> Messages:
    """For formats without a system turn: the system text opens the first user turn."""
    if not messages or messages[0]["role"] != "system":
        return messages
    system, rest = messages[0]["content"], messages[1:]
    if rest and rest[0]["role"] == "user":
        return [{"role": "user", "content": f"{system}\n\n{rest[0]['content']}"}, *rest[1:]]
    return [{"role": "user", "content": system}, *rest]


def _gemma(messages: Messages, bos: str, eos: str) -> str:
    turns = "".join(
        f"<start_of_turn>{'model' if m['role'] == 'assistant' else 'user'}\n{m['content'].strip()}<end_of_turn>\n"
        for m in _system_into_first_user(messages))
    return bos + turns + "<start_of_turn>model\n"


def _mistral(messages: Messages, bos: str, eos: str) -> str:
    out = [bos]
    for m in _system_into_first_user(messages):
        text = m["content"].strip()
        out.append(f"{text}{eos}" if m["role"] == "assistant" else f"[INST] {text} [/INST]")
    return "".join(out)


_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


def _transcript(messages: Messages, bos: str, eos: str) -> str:
    return bos + "".join(f"{_LABELS[m['role']]}: {m['content']}\n" for m in messages) + "Assistant:"


def _raw(messages: Messages, bos: str, eos: str) -> str:
    """The last user message alone, for a server that applies the model's template itself."""
    return next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")


BUILTIN: dict[str, Template] = {t.name: t for t in (
    Template("chatml", _chatml, ("<|im_end|>",)),
    Template("llama3", _llama3, ("<|eot_id|>",)),
    Template("gemma", _gemma, ("<end_of_turn>",)),
    Template("mistral", _mistral, ()),
    Template("transcript", _transcript, ("\nUser:", "\nSystem:")),
    Template("raw", _raw, ()),
)}


class TemplateError(ValueError):
    pass


def _raise(message: str) -> None:
    raise TemplateError(message)


def _jinja(source: str) -> Template:
    try:
        from jinja2 import TemplateSyntaxError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:
        raise TemplateError("a Jinja chat template needs Jinja2: pip install 'clawdbot[grpc]'") from None
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, autoescape=False)
    env.globals["raise_exception"] = _raise
    try:
        compiled = env.from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"the Jinja chat template does not compile: {exc.message} (line {exc.lineno})") from None

    def render(messages: Messages, bos: str, eos: str) -> str:
        values: dict[str, Any] = {"messages": messages, "add_generation_prompt": True, "bos_token": bos,
                                  "eos_token": eos}
        try:
            return compiled.render(values)
        except TemplateError:
            raise
        except Exception as exc:  # the sandbox's SecurityError, an undefined name, a type error
            raise TemplateError(f"the chat template failed: {type(exc).__name__}: {exc}") from None

    return Template("jinja", render)


def is_jinja(value: str) -> bool:
    return "{%" in value or "{{" in value


def compile_template(value: str | None) -> Template:
    """A built-in format by name (None: DEFAULT) or a Jinja template; TemplateError says what is wrong."""
    if value is None:
        return BUILTIN[DEFAULT]
    if is_jinja(value):
        return _jinja(value)
    template = BUILTIN.get(value)
    if template is None:
        raise TemplateError(f"unknown chat template `{value}` (built in: {', '.join(BUILTIN)}; or a Jinja "
                            f"template, as a model's tokenizer_config.json has it)")
    return template


def template_problem(value: str) -> str | None:
    """What is wrong with a configured template, for the loader; None when it compiles and renders a
    short chat."""
    try:
        compile_template(value).render([{"role": "user", "content": "hi"}], "", "")
    except TemplateError as exc:
        return str(exc)
    return None
