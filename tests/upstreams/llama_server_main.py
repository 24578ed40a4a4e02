"""`python -m llama_cpp.server`, loading its model without ggml's extra buffer types on a CPU with
AMX. On such CPUs llama.cpp's AMX matrix multiply (llama-cpp-python 0.3.36 as built here) killed
the server with SIGSEGV at the first prompt of more than one token, for Gemma's Q4_K_M file as for
SmolLM2's Q4_1 (gdb: ggml_backend_amx_mul_mat), so every request after it met a closed port. This
is the same switch the gateway's own local provider makes (providers/local.py); elsewhere the
server runs exactly as `python -m llama_cpp.server`."""

from __future__ import annotations

import runpy

import llama_cpp.llama_cpp as native

from clawdbot.providers.local import cpu_has_amx

if cpu_has_amx():
    defaults = native.llama_model_default_params

    def without_extra_buffers() -> object:
        params = defaults()
        params.use_extra_bufts = False
        return params

    native.llama_model_default_params = without_extra_buffers  # the server's Llama reads it at load time

runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
