"""The Grafana dashboard and the Prometheus alert rules query only what /metrics exports.

Every PromQL expression of packaging/grafana/ (dashboard panels and variables, alert
rules) is taken apart into metric names, selector labels and grouping labels; a real
server under uvicorn is driven (upload, search, answers, a refused request) and its
/metrics must show every one of those names, as an exact sample name, carrying those
labels. With `promtool` on PATH (or $PROMTOOL) the rules are checked and unit-tested
(alert-rules.test.yml) and every dashboard expression is parsed by Prometheus itself.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO, server_env
from tests.e2e.server import ServerProcess

GRAFANA = REPO / "packaging" / "grafana"
DASHBOARD = GRAFANA / "appliance-dashboard.json"
RULES = GRAFANA / "alert-rules.yml"
RULE_TESTS = GRAFANA / "alert-rules.test.yml"

# Labels Prometheus attaches at scrape time (not in the exposition), and the series it
# makes up itself for every target.
TARGET_LABELS = {"job", "instance"}
SYNTHETIC_SERIES = {"up"}

AGGREGATORS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
FUNCTIONS = {
    "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
    "avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
    "count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
    "delta", "deriv", "exp", "floor", "histogram_avg", "histogram_count", "histogram_fraction",
    "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum",
    "holt_winters", "hour", "idelta", "increase", "irate", "label_join", "label_replace",
    "last_over_time", "ln", "log10", "log2", "mad_over_time", "max_over_time",
    "min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time",
    "quantile_over_time", "rad", "rate", "resets", "round", "scalar", "sgn", "sin", "sinh",
    "sort", "sort_desc", "sqrt", "stddev_over_time", "stdvar_over_time", "sum_over_time",
    "tan", "tanh", "time", "timestamp", "vector", "year",
}  # fmt: skip
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"and", "or", "unless", "bool", "atan2", "inf", "nan"}

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
    |(?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    |(?P<range>\[[^\]]*\])
    |(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<op>==|!=|=~|!~|>=|<=|[-+*/%^<>=(){},])
    """,
    re.VERBOSE,
)


@dataclass
class Selector:
    metric: str
    matchers: list[tuple[str, str, str]] = field(default_factory=list)  # label, op, value


@dataclass
class Query:
    """What one PromQL expression reads."""

    expr: str
    selectors: list[Selector] = field(default_factory=list)
    grouping: set[str] = field(default_factory=set)  # by/without/on/ignoring/group_* labels
    aggregated: bool = False  # an aggregation: the result keeps the grouping labels only

    @property
    def metrics(self) -> set[str]:
        return {s.metric for s in self.selectors}


def tokenize(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"cannot read {expr[pos : pos + 20]!r} in {expr!r}")
        kind = m.lastgroup
        assert kind is not None
        if kind != "ws":
            tokens.append((kind, m.group()))
        pos = m.end()
    return tokens


def _unquote(literal: str) -> str:
    body = literal[1:-1]
    return body if literal.startswith("`") else re.sub(r"\\(.)", r"\1", body)


def parse_promql(expr: str) -> Query:
    """Metric names, label matchers and grouping labels of `expr`. Raises on what it does
    not know (an unknown function, a selector without a metric name, a stray character),
    so a typo cannot pass unread."""
    tokens = tokenize(expr)
    query = Query(expr)
    i = 0

    def at(j: int) -> str:
        return tokens[j][1] if j < len(tokens) else ""

    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "op" and text == "{":
            raise ValueError(f"a selector without a metric name in {expr!r}")
        if kind != "ident":
            i += 1
            continue
        word = text.lower()
        if word in GROUPING:
            i += 1
            if at(i) == "(":
                i += 1
                while at(i) != ")":
                    k, label = tokens[i]
                    if k == "ident":
                        query.grouping.add(label)
                    elif label != ",":
                        raise ValueError(f"unexpected {label!r} in {text}(...) of {expr!r}")
                    i += 1
                i += 1
            continue
        if word in AGGREGATORS or text in FUNCTIONS or word in KEYWORDS:
            query.aggregated |= word in AGGREGATORS
            i += 1
            continue
        if at(i + 1) == "(":
            raise ValueError(f"unknown PromQL function {text!r} in {expr!r}")
        selector = Selector(text)
        i += 1
        if at(i) == "{":
            i += 1
            while at(i) != "}":
                if at(i) == ",":
                    i += 1
                    continue
                (k1, label), (_, op), (k3, value) = tokens[i : i + 3]
                if k1 != "ident" or op not in ("=", "!=", "=~", "!~") or k3 != "string":
                    raise ValueError(f"bad matcher {label}{op}{value} in {expr!r}")
                selector.matchers.append((label, op, _unquote(value)))
                i += 3
            i += 1
        query.selectors.append(selector)
    if not query.selectors:
        raise ValueError(f"no metric in {expr!r}")
    return query


_LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>[a-zA-Z_]\w*)\s*\)$")


def parse_variable(query: str) -> tuple[Query, str]:
    """A Grafana `label_values(selector, label)` variable query."""
    m = _LABEL_VALUES.match(query.strip())
    assert m, f"unsupported variable query {query!r}"
    return parse_promql(m["selector"]), m["label"]


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def _rules() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return data


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row holds its panels


def dashboard_targets() -> list[tuple[str, dict[str, Any]]]:
    return [
        (p["title"], t) for p in panels(_dashboard()) for t in p.get("targets", []) if "expr" in t
    ]


def all_queries() -> list[tuple[str, Query, set[str]]]:
    """(where, query, labels the result must carry: a variable's label, a legend's)."""
    found: list[tuple[str, Query, set[str]]] = []
    for title, target in dashboard_targets():
        legend = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
        found.append((f"panel {title!r}", parse_promql(target["expr"]), legend))
    for variable in _dashboard()["templating"]["list"]:
        if variable["type"] == "query":
            query, label = parse_variable(variable["query"]["query"])
            found.append((f"variable {variable['name']}", query, {label}))
    for group in _rules()["groups"]:
        for rule in group["rules"]:
            found.append((f"alert {rule['alert']}", parse_promql(rule["expr"]), set()))
    return found


# ---------------------------------------------------------------------------- the parser


def test_the_parser_reads_metrics_labels_and_grouping() -> None:
    q = parse_promql(
        'histogram_quantile(0.99, sum by (le, path) (rate(x_seconds_bucket{job=~"$job", '
        'path!~"/v1/ask.*|/v1/documents"}[$__rate_interval]))) > 2 * 1024 '
        "or on (instance) y_bytes / ignoring(part) z_total"
    )
    assert q.metrics == {"x_seconds_bucket", "y_bytes", "z_total"}
    assert q.selectors[0].matchers == [
        ("job", "=~", "$job"),
        ("path", "!~", "/v1/ask.*|/v1/documents"),
    ]
    assert q.grouping == {"le", "path", "instance", "part"}
    assert parse_promql("sum(rate(a_total[5m])) by (worker)").grouping == {"worker"}
    assert parse_variable('label_values(appliance_ready{job=~"$job"}, instance)')[1] == "instance"
    for bad in (
        "histogram_quantil(0.9, a_bucket)",
        '{__name__="a"}',
        "a_total $ 2",
        "sum(a{b c})",
        "2 > 1",
    ):
        with pytest.raises((ValueError, AssertionError)):
            parse_promql(bad)


# ------------------------------------------------------------------------ static checks


def test_the_dashboard_imports_cleanly_and_covers_the_appliance() -> None:
    dashboard = _dashboard()
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["__inputs"][0]["pluginId"] == "prometheus"
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for p in panels(dashboard):
        pos = p["gridPos"]
        x0, y0, w, h = pos["x"], pos["y"], pos["w"], pos["h"]
        assert x0 >= 0 and x0 + w <= 24, p["title"]
        mine = {(x, y) for x in range(x0, x0 + w) for y in range(y0, y0 + h)}
        assert not mine & cells, f"panel {p['title']!r} overlaps another"
        cells |= mine
        if p["type"] == "row":
            continue
        assert p.get("description"), f"panel {p['title']!r} has no description"
        assert p["fieldConfig"]["defaults"].get("unit"), f"panel {p['title']!r} has no unit"
        assert p["datasource"] == ds and p["targets"], p["title"]
        assert all(t["datasource"] == ds for t in p["targets"]), p["title"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            assert variable["datasource"] == ds
    queried = set().union(*(parse_promql(t["expr"]).metrics for _, t in dashboard_targets()))
    for metric in (
        "appliance_http_requests_total",  # request rate
        "appliance_http_request_duration_seconds_bucket",  # latency percentiles
        "appliance_time_to_first_token_seconds_bucket",
        "appliance_tokens_generated_total",  # tokens/s
        "appliance_queue_depth",
        "appliance_generation_slots_active",
        "appliance_generation_slots",
        "appliance_documents_ingested_total",  # ingestion rate
        "appliance_chunks_ingested_total",
        "process_resident_memory_bytes",  # RSS
        "appliance_ready",
        "appliance_data_disk_free_bytes",
    ):
        assert metric in queried, f"the dashboard shows no {metric}"


def test_the_alert_rules_are_well_formed_and_cover_the_spec() -> None:
    rules = _rules()
    assert set(rules) == {"groups"}
    alerts: dict[str, dict[str, Any]] = {}
    for group in rules["groups"]:
        assert group["name"] and group["rules"]
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
            assert rule["alert"] not in alerts, f"{rule['alert']} twice"
            alerts[rule["alert"]] = rule
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
            assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
            assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    reads = {name: parse_promql(rule["expr"]).metrics for name, rule in alerts.items()}
    assert "appliance_ready" in reads["ApplianceNotReady"]
    assert reads["ApplianceDown"] == {"up"}
    latency = reads["ApplianceRequestLatencyP99High"]
    assert "appliance_http_request_duration_seconds_bucket" in latency
    assert "appliance_data_disk_free_bytes" in reads["ApplianceDataDiskLow"]
    assert re.search(r"\)\s*>\s*2\s*$", alerts["ApplianceRequestLatencyP99High"]["expr"])


def _promtool() -> str:
    tool = os.environ.get("PROMTOOL") or shutil.which("promtool")
    if not tool or not os.access(tool, os.X_OK):  # `make test` unpacks it when it can
        pytest.skip("promtool is not installed (Debian: prometheus; or set PROMTOOL)")
    return tool


def test_promtool_checks_the_rules_and_their_unit_tests() -> None:
    tool = _promtool()
    for args in (["check", "rules", str(RULES)], ["test", "rules", str(RULE_TESTS)]):
        done = subprocess.run([tool, *args], capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_parses_every_dashboard_expression(tmp_path: Path) -> None:
    """Prometheus' own parser, on the panels' PromQL with Grafana's variables filled in."""
    tool = _promtool()
    records = [
        {
            "record": f"dashboard:expr_{i}",
            "expr": (
                t["expr"]
                .replace("$__rate_interval", "5m")
                .replace("$job", ".*")
                .replace("$instance", ".*")
            ),
        }
        for i, (_, t) in enumerate(dashboard_targets())
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": records}]}))
    done = subprocess.run(
        [tool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --------------------------------------------------------------- against a real server


@dataclass
class Exposition:
    labels: dict[str, set[str]] = field(default_factory=dict)  # sample name -> label names
    samples: dict[str, list[tuple[dict[str, str], float]]] = field(default_factory=dict)
    routes: set[str] = field(default_factory=set)  # route templates: OpenAPI's, `path` values


def read_exposition(text: str) -> Exposition:
    exp = Exposition()
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            exp.labels.setdefault(s.name, set()).update(s.labels)
            exp.samples.setdefault(s.name, []).append((s.labels, s.value))
            if "path" in s.labels:
                exp.routes.add(s.labels["path"])
    return exp


def problems(queries: list[tuple[str, Query, set[str]]], exp: Exposition) -> list[str]:
    """What the queries read that the exposition does not have."""
    found: list[str] = []
    for where, query, result_labels in queries:
        available = set(TARGET_LABELS)
        for selector in query.selectors:
            metric = selector.metric
            if metric in SYNTHETIC_SERIES:
                continue
            if metric not in exp.labels:
                found.append(f"{where}: no sample named {metric} in /metrics")
                continue
            have = exp.labels[metric] | TARGET_LABELS
            available |= have
            for label, op, value in selector.matchers:
                if label not in have:
                    found.append(f"{where}: {metric} has no label {label!r}")
                elif label == "path" and op in ("=~", "!~"):
                    # each route of an alternation must be a route of the appliance
                    for alternative in value.split("|"):
                        if not any(re.fullmatch(alternative, r) for r in exp.routes):
                            found.append(f"{where}: no route matches {alternative!r}")
        for label in sorted(query.grouping - available):
            found.append(f"{where}: {label!r} is on none of {sorted(query.metrics)}")
        # a legend's {{label}} or a variable's label must be in the result
        result = query.grouping | TARGET_LABELS if query.aggregated else available
        for label in sorted(result_labels - result):
            found.append(f"{where}: the result of {query.expr!r} has no label {label!r}")
    return found


@pytest.fixture(scope="module")
def scraped(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exposition]:
    """/metrics of a real server after traffic of every kind the dashboard charts: a
    readiness probe, an upload, a search, answers and a request refused (queue full)."""
    data = tmp_path_factory.mktemp("grafana-data")
    env = server_env(
        data,
        models_dir,
        APPLIANCE__GENERATION__QUEUE_SIZE="1",
        APPLIANCE__GENERATION__PARALLEL="1",
    )
    server = ServerProcess(env, tmp_path_factory.mktemp("logs") / "server.log").start()
    try:
        with server.client(120) as client:  # hang guard per request
            assert client.get("/readyz").status_code == 200
            files = [("files", ("canteen.txt", b"The canteen serves lunch from 11:30 to 14:00."))]
            job = client.post("/v1/documents", files=files).json()
            deadline = time.monotonic() + 300  # hang guard: one line of text (~1 s alone)
            while client.get(f"/v1/jobs/{job['job_id']}").json()["state"] in ("queued", "running"):
                assert time.monotonic() < deadline, "ingestion did not finish"
                time.sleep(0.2)
            assert client.post("/v1/search", json={"query": "lunch"}).status_code == 200
            ask = client.post("/v1/ask", json={"query": "When is lunch?", "max_tokens": 8})
            assert ask.status_code == 200, ask.text
            # one slot and a queue of one: one answer running, one waiting, a third's
            # generation refused (it gets the extractive answer, "busy")
            body = {
                "query": "Write a long essay about the canteen.",
                "max_tokens": 300,
                "strategy": "sentences",
            }  # no sentence stop: it runs on
            streams = [
                client.send(client.build_request("POST", "/v1/ask/stream", json=body), stream=True)
                for _ in range(2)
            ]
            try:
                busy = client.post("/v1/ask", json=body)
                assert busy.status_code == 200 and busy.json()["finish_reason"] == "busy"
            finally:
                for s in streams:
                    s.close()
            text = client.get("/metrics").text
            spec = client.get("/openapi.json").json()
        exp = read_exposition(text)
        exp.routes |= set(spec["paths"])
        yield exp
    finally:
        server.stop()


@pytest.mark.e2e
@pytest.mark.slow
def test_every_queried_metric_and_label_is_in_metrics(scraped: Exposition) -> None:
    queries = all_queries()
    assert len(queries) > 25
    assert problems(queries, scraped) == []
    # the check bites: a misspelt name, an unknown label, a route that does not exist
    typo = [
        ("typo", parse_promql("rate(appliance_tokens_generatd_total[5m])"), set()),
        ("typo", parse_promql('appliance_queue_depth{wroker="store"}'), set()),
        ("typo", parse_promql("sum by (stage) (appliance_queue_depth)"), set()),
        ("typo", parse_promql('appliance_http_requests_total{path=~"/v1/serch"}'), set()),
        ("typo", parse_promql("appliance_generation_slots"), {"worker"}),
    ]
    assert len(problems(typo, scraped)) == len(typo)


@pytest.mark.e2e
@pytest.mark.slow
def test_readiness_and_disk_gauges_read_the_running_appliance(scraped: Exposition) -> None:
    assert scraped.samples["appliance_ready"] == [({}, 1.0)]
    parts = {labels["part"]: value for labels, value in scraped.samples["appliance_part_ready"]}
    assert parts == {"embedding_model": 1, "chat_model": 1, "vector_store": 1, "journal": 1}
    [(_, free)] = scraped.samples["appliance_data_disk_free_bytes"]
    [(_, total)] = scraped.samples["appliance_data_disk_total_bytes"]
    assert 0 < free <= total
    [(_, rss)] = scraped.samples["process_resident_memory_bytes"]
    assert rss > 50 * 1024 * 1024  # the models are loaded
    refused = {
        labels["worker"]: value for labels, value in scraped.samples["appliance_rejections_total"]
    }
    assert refused == {"generation": 1.0}


def test_state_collector_reports_a_stopped_part_and_a_missing_data_dir(tmp_path: Path) -> None:
    from prometheus_client import generate_latest

    from appliance.observability.metrics import Metrics

    class Part:
        alive = True

    class Fake:
        def __init__(self) -> None:
            self.data_dir = tmp_path
            self.embedder, self.generator, self.store, self.journal = Part(), Part(), Part(), Part()

    services = Fake()
    metrics = Metrics()
    metrics.watch(services)
    exp = read_exposition(generate_latest(metrics.registry).decode())
    assert exp.samples["appliance_ready"] == [({}, 1.0)]
    assert exp.samples["appliance_data_disk_total_bytes"][0][1] > 0
    services.store = type("Down", (), {"alive": False})()
    services.data_dir = tmp_path / "gone"
    exp = read_exposition(generate_latest(metrics.registry).decode())
    assert exp.samples["appliance_ready"] == [({}, 0.0)]
    assert ({"part": "vector_store"}, 0.0) in exp.samples["appliance_part_ready"]
    assert "appliance_data_disk_free_bytes" not in exp.samples
    with pytest.raises(ValueError, match="Duplicated"):
        metrics.watch(services)  # the names are registered: a second collector is refused
