"""`make bench`: every benchmark in one run; writes bench/RESULTS.md (never edit it by hand).

`python bench/run_all.py serve_load engine_models` reruns only those; the other
sections come from their last run on this machine (kept under ~/.cache/rag-appliance/bench).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.store_engines import CACHE  # noqa: E402

RESULTS = REPO / "bench" / "RESULTS.md"
EARLIER = "\n\n(the section above is from an earlier `make bench`, not rerun in the last one)"
# Why: `python bench/run_all.py NAME...` reran only those; every other section is marked.
RERUN_ONLY = (
    "\n\n(the section above is from an earlier `make bench`: the last run, "
    "`python bench/run_all.py {names}`, reran only {names})"
)
OLD_MARKERS = ("\n\n(from an earlier `make bench`, not rerun in the last one)", EARLIER)
SCRIPTS = ["serve_load", "batching", "contention", "answers", "answers_apache", "evidence", "askers",
           "askers_overload", "askers_auto", "hostile", "ocr", "hybrid", "query_thread", "query_path",
           "store_engines", "collections", "engine_models", "portable_kernels"]  # fmt: skip
COMMANDS = {  # a section whose script runs with arguments: (script, arguments)
    "answers_apache": ("answers", ["--corpus", "apache"]),
    "askers_overload": ("askers", ["overload"]),
    "askers_auto": ("askers", ["overload", "--answer-mode", "auto"]),
}
MARKDOWN = {
    "batching",
    "contention",
}  # these print their section as markdown; the others' output is fenced
TITLES = {
    "batching": "Batching as shipped: the same questions one at a time and together (bench/batching.py)",
    "contention": "Beside a CPU hog on every core: hog / idle (bench/contention.py)",
    "answers": "Answers: accuracy, evidence and latency per prompt strategy (bench/answers.py)",
    "answers_apache": "Answers on the second corpus, the Apache HTTP Server manual (bench/answers.py --corpus apache)",
    "evidence": "Evidence hit@1 and hit@5 per sentence ranking, both corpora (bench/evidence.py)",
    "askers": "50 concurrent askers, before and after the lean prompt (bench/askers.py)",
    "askers_overload": "8 and 150 concurrent askers: evidence first, busy beyond capacity (bench/askers.py overload)",
    "askers_auto": "8 and 150 concurrent askers with the shipped answer_mode, auto: the 135M model's questions answered by extract (bench/askers.py overload --answer-mode auto)",
    "hostile": "Hostile files against the shipped limits (bench/hostile.py)",
    "hybrid": "Hybrid retrieval (BM25 + dense, RRF) vs dense only (bench/hybrid.py)",
    "ocr": "OCR of scanned pages: speed and character error rate (bench/ocr.py)",
    "query_thread": "Search while answers stream: query embeddings on their own thread (bench/query_thread.py)",
    "query_path": "Query path: appliance code vs raw library calls (bench/query_path.py)",
    "store_engines": "Embedded vector engines (bench/store_engines.py)",
    "collections": "Search with a collection filter vs without, Qdrant Edge (bench/collections.py)",
    "engine_models": "Continuous batching engine vs llama-server, both models (bench/engine_models.py)",
    "portable_kernels": "The bundle's portable llama.cpp vs the native build (bench/portable_kernels.py)",
}


def run(name: str) -> str:
    print(f"== {name}", flush=True)
    t0 = time.monotonic()
    script, args = COMMANDS.get(name, (name, []))
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / f"{script}.py"), *args], cwd=REPO, text=True,
        stdout=subprocess.PIPE, stderr=sys.stderr, check=False,
    )  # fmt: skip
    print(proc.stdout, flush=True)
    if proc.returncode != 0:
        out = f"`{name}.py` failed with exit code {proc.returncode}.\n"
    else:
        out = proc.stdout.strip()
        if not out.endswith(" s)"):  # the script did not print its own run time
            out += f"\n\n({name}.py: {time.monotonic() - t0:.0f} s)"
        out += "\n"
    (CACHE / f"{name}.out").write_text(out)
    return out


def earlier_sections() -> dict[str, str]:
    """The sections of the current RESULTS.md, by title (the serving part under "")."""
    if not RESULTS.is_file():
        return {}
    text = RESULTS.read_text()
    for marker in OLD_MARKERS:
        text = text.replace(marker, "")
    text = re.sub(
        r"\n\n\(the section above is from an earlier `make bench`: the last run, [^)]*\)", "", text
    )
    first = min((text.find(f"## {t}") for t in TITLES.values() if f"## {t}" in text),
                default=len(text))  # fmt: skip
    out = {"": text[:first].rstrip()}
    for title in TITLES.values():
        start = text.find(f"## {title}")
        if start >= 0:
            end = min((text.find(f"## {t}", start + 1) for t in TITLES.values()
                       if text.find(f"## {t}", start + 1) > 0), default=len(text))  # fmt: skip
            out[title] = text[start:end].rstrip()
    return out


def main() -> None:
    wanted = sys.argv[1:] or SCRIPTS
    CACHE.mkdir(parents=True, exist_ok=True)
    earlier = earlier_sections()
    outputs: dict[str, str | None] = {}
    serving_md = CACHE / "serve_load.md"
    if "serve_load" in wanted:  # written only by a run that succeeds: never a stale one
        serving_md.unlink(missing_ok=True)
    for name in SCRIPTS:
        if name in wanted:
            outputs[name] = run(name)
        else:  # not rerun: the last run's section, marked as such below
            outputs[name] = None
    earlier_note = EARLIER if not sys.argv[1:] else RERUN_ONLY.format(names=" ".join(wanted))
    if "serve_load" in wanted and serving_md.is_file():
        parts = [serving_md.read_text().rstrip()]
    elif "serve_load" in wanted:  # it ran and failed: say so above the last good section
        failed = outputs["serve_load"] or ""
        parts = [f"{failed.strip()}\n\n" + earlier.get("", "") + EARLIER]
    else:  # not run on this machine: keep the last committed section, say so
        parts = [earlier.get("", "(serve_load not run)") + earlier_note]
    for name in SCRIPTS[1:]:
        title = TITLES[name]
        out = outputs[name]
        if out is not None and name in MARKDOWN:
            parts.append(f"## {title}\n\n{out.strip()}")
        elif out is not None:
            parts.append(f"## {title}\n\n```\n{out.strip()}\n```")
        elif title in earlier:
            parts.append(earlier[title] + earlier_note)
        else:
            parts.append(f"## {title}\n\n(not run)")
    RESULTS.write_text("\n\n".join(parts) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
