"""`appliance collections`, `keys create --collections`, `ingest --collection` and
`ask --collection` against a real appliance (in process, real models): each command is
parsed by the real parser and its request awaited with the test's client."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.cli import build_parser
from appliance.client import ApplianceClient
from tests.docs_factory import FACTS, make_md
from tests.tui.conftest import Live

pytestmark = pytest.mark.slow

BUDGET = "The travel budget for 2027 is 40,000 euros per team."


async def run(
    client: ApplianceClient, capsys: pytest.CaptureFixture[str], *argv: str
) -> tuple[int, str, str]:
    """`appliance ARGV` through `client`: its exit status, stdout and stderr."""
    args = build_parser().parse_args(list(argv))
    code: int = await args.request(client, args)
    out = capsys.readouterr()
    return code, out.out, out.err


def listed(out: str) -> dict[str, list[str]]:
    """`collections list`'s rows by name: [name, id, documents, date, time]."""
    return {line.split()[0]: line.split() for line in out.splitlines()[1:]}


def key_line(out: str, name: str) -> list[str]:
    """`keys list`'s row of the key named `name`: [id, role, date, time, revoked,
    collections, name]."""
    return next(line.split() for line in out.splitlines() if line.endswith(f"  {name}"))


async def test_collections_keys_ingest_and_ask_from_the_command_line(
    live: Live,
    live_client: ApplianceClient,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    hr, finance = tmp_path / "hr", tmp_path / "finance"
    hr.mkdir()
    finance.mkdir()
    make_md(hr / "backups.md")
    (finance / "budget.txt").write_text(BUDGET)

    async def cli(*argv: str) -> tuple[int, str, str]:
        return await run(live_client, capsys, *argv)

    code, out, _ = await cli("collections", "create", "hr")
    assert code == 0 and out.startswith("made collection hr")
    assert (await cli("collections", "create", "finance"))[0] == 0
    code, out, _ = await cli("collections", "list")
    assert code == 0 and set(listed(out)) == {"default", "hr", "finance"}

    # ingest --collection: the documents go there
    code, out, err = await cli("ingest", str(hr), "--collection", "hr")
    assert code == 0 and "into collection hr" in out and "done backups.md" in out, err
    assert (await cli("ingest", str(finance), "--collection", "finance"))[0] == 0
    docs = (await live_client.documents()).documents
    assert {d.file_name: d.collection for d in docs} == {
        "backups.md": "hr",
        "budget.txt": "finance",
    }
    assert listed((await cli("collections", "list"))[1])["hr"][2] == "1"
    code, _, err = await cli("ingest", str(finance), "--collection", "nope")
    assert code == 1 and "upload failed" in err

    # ask --collection: only that collection's sentences answer
    question = "How long are nightly backups kept?"
    code, out, err = await cli("ask", question, "--extract", "--collection", "hr")
    assert code == 0 and "35 days" in out, err
    code, out, err = await cli("ask", question, "--extract", "--collection", "finance")
    assert code == 0 and "35 days" not in out and FACTS["md"] not in out, err

    # keys create --collections; the list shows what each key reads
    code, out, _ = await cli(
        "keys", "create", "--role", "query", "--name", "helpdesk", "--collections", "hr"
    )
    assert code == 0 and "reading hr." in out
    secret = next(w for w in out.split() if w.startswith("rag_"))
    code, out, _ = await cli("keys", "list")
    assert key_line(out, "helpdesk")[-2] == "hr"
    assert key_line(out, "bootstrap admin")[-3] == "*"  # made before: reads all
    async with ApplianceClient(live.url, secret, transport=live.transport) as helpdesk:
        code, out, _ = await run(helpdesk, capsys, "collections", "list")
        assert code == 0 and set(listed(out)) == {"hr"}

    # rename: the key reads it under its new name
    code, out, _ = await cli("collections", "rename", "hr", "people")
    assert code == 0 and "renamed hr to people" in out
    assert key_line((await cli("keys", "list"))[1], "helpdesk")[-2] == "people"

    # delete: a collection with documents only with --force, which deletes them
    code, out, err = await cli("collections", "delete", "people")
    assert code == 1 and "409" in err and "delete people --force" in err
    assert len((await live_client.documents()).documents) == 2
    code, out, _ = await cli("collections", "delete", "people", "--force")
    assert code == 0 and "deleted collection people and its 1 documents" in out
    assert [d.file_name for d in (await live_client.documents()).documents] == ["budget.txt"]
    code, _, err = await cli("collections", "delete", "people")
    assert code == 1 and "404" in err
    assert set(listed((await cli("collections", "list"))[1])) == {"default", "finance"}


def test_names_are_checked_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for argv in (
        ["collections", "create", "HR"],
        ["collections", "rename", "hr", "a/b"],
        ["keys", "create", "--role", "query", "--name", "x", "--collections", " , "],
        ["keys", "create", "--role", "query", "--name", "x", "--collections", "hr,Fin"],
        ["ingest", "f.txt", "--collection", "../keys"],
    ):
        with pytest.raises(SystemExit):
            parser.parse_args(argv)
        assert "collection" in capsys.readouterr().err
    args = parser.parse_args(["keys", "create", "--role", "query", "--name", "x",
                              "--collections", "hr, finance"])  # fmt: skip
    assert args.collections == ["hr", "finance"]
    assert parser.parse_args(["ask", "q"]).collections is None
