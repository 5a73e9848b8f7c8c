"""Load `llama_cpp.Llama` objects with the model parameters the appliance needs.

llama-cpp-python does not expose `use_extra_bufts`; on this hardware (AVX-512 + AMX
reported) the repacked/AMX buffers crash `llama_decode` for batches of more than
one token, so the default turns them off. Loading is serialized by a lock because
the override is applied to llama-cpp-python's module for the duration of one load.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

from appliance.engine.cpu_backends import ensure_loaded

_LOAD_LOCK = threading.Lock()


@contextlib.contextmanager
def _model_params(extra_buffers: bool) -> Iterator[None]:
    import llama_cpp.llama as llama_module

    bindings: Any = llama_module.__dict__["llama_cpp"]
    original = bindings.llama_model_default_params

    def params() -> Any:
        value = original()
        value.use_extra_bufts = extra_buffers
        return value

    with _LOAD_LOCK:
        bindings.llama_model_default_params = params
        try:
            yield
        finally:
            bindings.llama_model_default_params = original


def load_llama(model_path: str, *, extra_buffers: bool = False, **kwargs: Any) -> Any:
    """`llama_cpp.Llama(model_path, **kwargs)` with `use_extra_bufts` set as configured."""
    import llama_cpp

    ensure_loaded()
    with _model_params(extra_buffers):
        return llama_cpp.Llama(model_path=model_path, verbose=False, **kwargs)
