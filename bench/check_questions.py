"""Checks a question set of the answer benchmark against its pages (no server, no model).

For bench/data/<name>_questions.json: every listed page exists under `root` and its
file name (what the appliance reports, the directory dropped) is unique; every
question names one of those pages; every `fact` is found verbatim, case-insensitively
and with whitespace collapsed, in its page's text as the appliance reads it (the HTML
parser, main content only); no run of 6 words of a question appears in any page (not
copied from the text); questions are unique; no fact is the question's own words.

    python bench/check_questions.py bench/data/apache_questions.json [...]
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from appliance.ingest.formats.html import parse_html  # noqa: E402

RUN = 6  # words in a row that count as copied


def normalized(text: str) -> str:
    return " ".join(text.lower().split())


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def terms(text: str) -> list[str]:
    """Words with their dashes (an option `--owner` is not the word `owner`)."""
    return re.findall(r"-*\w[\w-]*", text.lower())


def runs(tokens: list[str]) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + RUN]) for i in range(len(tokens) - RUN + 1)}


def page_text(path: Path) -> str:
    return normalized(" ".join(s.text for s in parse_html(path.read_bytes()).sections))


def problems(spec: dict[str, object]) -> list[str]:
    root = Path(str(spec["root"]))
    files: list[str] = spec["files"]  # type: ignore[assignment]
    found: list[str] = []
    by_name: dict[str, str] = {}
    for rel in files:
        name = PurePosixPath(rel).name
        if name in by_name:
            found.append(f"two pages named {name}: {by_name[name]}, {rel}")
        by_name[name] = rel
        if not (root / rel).is_file():
            found.append(f"missing page {root / rel}")
    texts = {name: page_text(root / rel) for name, rel in by_name.items() if (root / rel).is_file()}
    page_runs = set().union(*(runs(words(t)) for t in texts.values()))
    asked: set[str] = set()
    questions: list[dict[str, str]] = spec["questions"] + spec.get("exact_token_questions", [])  # type: ignore[operator]
    for q in questions:
        question, fact, name = q["question"], q["fact"], q["file"]
        label = f"{question[:60]!r}"
        if normalized(question) in asked:
            found.append(f"{label}: asked twice")
        asked.add(normalized(question))
        if name not in texts:
            found.append(f"{label}: page {name} is not in the set")
        elif normalized(fact) not in texts[name]:
            found.append(f"{label}: fact {fact!r} not in {name}")
        copied = runs(words(question)) & page_runs
        if copied:
            found.append(f"{label}: copied from the pages: {' '.join(sorted(copied)[0])!r}")
        if set(terms(fact)) <= set(terms(question)):
            found.append(f"{label}: the fact {fact!r} is the question's own words")
    return found


def main() -> None:
    failed = False
    for arg in sys.argv[1:] or [str(REPO / "bench" / "data" / "pg_questions.json")]:
        spec = json.loads(Path(arg).read_text())
        found = problems(spec)
        extra = len(spec.get("exact_token_questions", []))
        print(f"{arg}: {len(spec['files'])} pages, {len(spec['questions'])} questions "
              f"+ {extra} exact-token; {len(found)} problem(s)")  # fmt: skip
        for line in found:
            print(f"  {line}")
        failed = failed or bool(found)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
