"""Schemathesis (its CLI, every default check) against the live server's OpenAPI document:
zero server errors and zero schema violations (undocumented statuses, content types and
bodies, schema-valid data refused).

Every phase runs in both cuts, on every operation. The coverage phase (each parameter's
boundaries and each schema keyword broken in turn, positive and negative) is whole in both:
it does not depend on the number of examples. `SCHEMATHESIS_EXAMPLES` bounds the random
part (the fuzzing phase's examples per operation, a third of them for
chat; the stateful phase's scenarios): 10 in `make test` (CI's cut), 100 in `make soak`
(schemathesis's own default, ~10x longer)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import server_env
from tests.docs_factory import make_md
from tests.e2e.server import ServerProcess

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "10"))
# A hang guard for the schemathesis run, not a speed check: at 10 examples it takes
# ~9 min alone; the limit (30 min at 10) scales with the examples and leaves room for a
# CPU hog beside the suite. The test's own limit adds the server's start and stop.
RUN_LIMIT_S = 600 + 120 * EXAMPLES
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(RUN_LIMIT_S + 300)]

# A file's content is not expressible in OpenAPI: random bytes named x.png are
# schema-valid and rightly refused (415). Nor is a token count: a schema-valid chat
# message of 32k characters is far past the model's context and rightly refused (400,
# as OpenAI does); every chat example generates an answer, so it gets fewer examples.
# An upload's `collection` must exist on the server, which no schema can say either: a
# schema-valid name of none is rightly answered 404 (as a search naming one is, by default).
# A synced folder must exist on the server, which no schema can say: a schema-valid
# path that is not an absolute directory is rightly refused (400). Nothing else is
# exempted. (DELETE /v1/keys/{key_id} is not fuzzed: its stateful phase reads the
# fuzzer's own key id from GET /v1/keys and revokes it, and every later request is
# then a 401; tests/e2e/test_server.py covers revocation.)
# request-timeout: a hang guard per request (the longest, an answer of 32 tokens to a long
# fuzzed question, takes seconds)
CONFIG = """
request-timeout = 120
[generation]
max-examples = {examples}
[[operations]]
# one filter: separate include-path and include-method filters match either (any POST)
include-name = "POST /v1/documents"
checks.positive_data_acceptance.expected-statuses = ["2xx", 404, 415]
[[operations]]
include-name = "POST /v1/chat/completions"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400]
generation.max-examples = {chat_examples}
[[operations]]
include-name = "POST /v1/sources"
checks.positive_data_acceptance.expected-statuses = ["2xx", 400]
"""


def test_the_api_does_what_its_openapi_says(models_dir: Path, tmp_path: Path) -> None:
    env = server_env(
        tmp_path / "data", models_dir,
        APPLIANCE__SECURITY__RATE_LIMIT_PER_MINUTE="0",  # fuzzing sends hundreds a minute
        APPLIANCE__GENERATION__MAX_TOKENS_CEILING="32",  # keep each answer short
    )  # fmt: skip
    server = ServerProcess(env, tmp_path / "server.log").start()
    try:
        with server.client() as client:
            md = make_md(tmp_path / "backups.md")
            client.post("/v1/documents", files=[("files", (md.name, md.read_bytes()))])
        config = tmp_path / "schemathesis.toml"
        config.write_text(CONFIG.format(examples=EXAMPLES, chat_examples=max(1, EXAMPLES // 3)))
        st = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
        assert st is not None
        run = subprocess.run(
            [st, "--config-file", str(config), "run", f"{server.url}/openapi.json",
             "-H", f"Authorization: Bearer {server.key}",
             # one backup per example would copy the store hundreds of times;
             # tests/e2e/test_backup.py covers it
             "--exclude-path", "/v1/backup", "--exclude-name", "DELETE /v1/keys/{key_id}",
             "--seed", "1", "--no-color"],
            capture_output=True, text=True, timeout=RUN_LIMIT_S, check=False, cwd=tmp_path,
        )  # fmt: skip
        assert server.proc is not None and server.proc.poll() is None, "the server stayed up"
    finally:
        server.stop()
    report = run.stdout[-6000:]
    assert run.returncode == 0, report
    assert "0 failures" in report or "No issues found" in report or "passed" in report, report
