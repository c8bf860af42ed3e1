"""deploy/monitoring/ (PodMonitor, PrometheusRule) and deploy/grafana/: offline checks.

Both kinds are Prometheus Operator CRDs, which kubernetes-validate does not bundle, so their
shape is checked here with small models of the fields used. Every PromQL expression, in the
rules and the dashboard, may name only metrics a real server's /metrics exposes (or `up`), its
route matchers only routes of the app, and its bucket, stage and head values only ones the
server exports.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from serving.core.drift import PSI_ALERT
from serving.core.language import NON_ENGLISH_ALERT
from serving.http.app import create_app
from serving.http.settings import Settings
from tests.kustomize import Doc, load_yaml, pod_spec, render
from tests.server_process import ROOT

DEPLOY = ROOT / "deploy"
MONITORING = DEPLOY / "monitoring"
DASHBOARD = DEPLOY / "grafana" / "helpdesk-scorer.json"
#: Prometheus' own series for each target; every other name must come from the server.
STANDARD_METRICS = {"up"}
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or"}
PROMQL_WORDS |= {"unless", "bool", "offset", "inf", "nan"}
GRAFANA_BUILTINS = {"__rate_interval", "__interval", "__range"}
#: Label values the server's own code sets, checked against what it exports.
EXPORTED_LABELS = ("le", "stage", "head")
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

Duration = Annotated[str, StringConstraints(pattern=r"^([0-9]+(ms|[smhdwy]))+$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Metadata(Strict):
    name: str
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)


class Labels(BaseModel):
    severity: Literal["critical", "warning", "info"]


class Annotations(Strict):
    summary: str = Field(min_length=1)
    description: str = Field(min_length=1)


class Rule(Strict):
    alert: str = Field(pattern=r"^HelpdeskScorer[A-Z][A-Za-z]+$")
    expr: str = Field(min_length=1)
    for_: Duration = Field(alias="for")
    labels: Labels
    annotations: Annotations


class Group(Strict):
    name: str
    rules: list[Rule] = Field(min_length=1)


class RuleSpec(Strict):
    groups: list[Group] = Field(min_length=1)


class PrometheusRule(Strict):
    apiVersion: Literal["monitoring.coreos.com/v1"]
    kind: Literal["PrometheusRule"]
    metadata: Metadata
    spec: RuleSpec


class Endpoint(Strict):
    port: str
    path: str
    interval: Duration


class Selector(Strict):
    matchLabels: dict[str, str] = Field(min_length=1)


class PodMonitorSpec(Strict):
    jobLabel: str
    selector: Selector
    podMetricsEndpoints: list[Endpoint] = Field(min_length=1)


class PodMonitor(Strict):
    apiVersion: Literal["monitoring.coreos.com/v1"]
    kind: Literal["PodMonitor"]
    metadata: Metadata
    spec: PodMonitorSpec


def one(docs: list[Doc], kind: str) -> Doc:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


RULES_DOC = one(load_yaml(MONITORING / "prometheusrule.yaml"), "PrometheusRule")
RULES = PrometheusRule.model_validate(RULES_DOC)
MONITOR = PodMonitor.model_validate(one(load_yaml(MONITORING / "podmonitor.yaml"), "PodMonitor"))
DASH: dict[str, Any] = json.loads(DASHBOARD.read_text())
PANELS = [p for p in DASH["panels"] if p["type"] != "row"]
VARIABLES = {v["name"]: v for v in DASH["templating"]["list"]}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label names (in matchers, `by (...)` and the like) or numbers."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", "{}", text)
    text = re.sub(r"\[[^\]]*\]", "[]", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found = re.findall(r"(?<![\w$.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", text)
    return set(found) - PROMQL_WORDS


def matchers(expr: str) -> list[tuple[str, str, str]]:
    """(label, operator, value) of every label matcher in the expression."""
    return re.findall(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"', expr)


def rule_exprs() -> list[tuple[str, str]]:
    return [(r.alert, r.expr) for g in RULES.spec.groups for r in g.rules]


def dashboard_exprs() -> list[tuple[str, str]]:
    return [(f"{p['title']}:{t['refId']}", t["expr"]) for p in PANELS for t in p["targets"]]


def variable_exprs() -> list[tuple[str, str]]:
    """The series selector inside each `label_values(selector, label)` variable query."""
    selectors = []
    for name, variable in VARIABLES.items():
        if variable["type"] == "query":
            found = re.fullmatch(r"label_values\((.+), *\w+\)", variable["query"])
            assert found is not None, name
            selectors.append((f"var:{name}", found[1]))
    return selectors


ALL_EXPRS = rule_exprs() + dashboard_exprs() + variable_exprs()


@pytest.fixture(scope="module")
def exported(tiny_release: Path) -> dict[str, set[str]]:
    """Sample names (key "") and label values a real server exposes after scoring a drift
    window of messages and answering a readiness probe."""
    settings = Settings(model_dir=tiny_release, threads=1, drift_window=10)
    with TestClient(create_app(settings)) as client:
        body = {"messages": [{"text": "late"}] * settings.drift_window}
        assert client.post("/v1/score", json=body).status_code == 200
        assert client.get("/readyz").status_code == 200
        text = client.get("/metrics").text
    seen: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            seen[""].add(sample.name)
            for label, value in sample.labels.items():
                seen[label].add(value)
    return seen


def test_metric_name_extraction() -> None:
    expr = (
        'sum by (le) (rate(a_bucket{route="/v1/x", le="0.5"}[$__rate_interval])) / on(instance)'
        " b_total > 0.05 and absent(up{job='j'} == 1) unless c:ratio offset 5m"
    )
    assert metric_names(expr) == {"a_bucket", "b_total", "up", "c:ratio"}


@pytest.mark.parametrize(("name", "expr"), ALL_EXPRS, ids=[n for n, _ in ALL_EXPRS])
def test_expression_names_only_exported_metrics(
    name: str, expr: str, exported: dict[str, set[str]]
) -> None:
    names = metric_names(expr)
    assert names, f"{name}: no metric found in {expr!r}"
    assert names <= exported[""] | STANDARD_METRICS, f"{name}: not exported: {names}"
    for label, _, value in matchers(expr):
        if label in EXPORTED_LABELS and "$" not in value:
            assert value in exported[label], f"{name}: {label}={value!r} is never exported"
    for opening, closing in ("()", "{}", "[]"):
        assert expr.count(opening) == expr.count(closing), f"{name}: unbalanced {opening}"


def test_route_matchers_name_routes_of_the_app() -> None:
    routes = set(create_app(Settings()).openapi()["paths"])
    for name, expr in ALL_EXPRS:
        for label, operator, value in matchers(expr):
            if label != "route":
                continue
            if operator == "=":
                assert value in routes, f"{name}: no route {value}"
            else:
                assert any(re.fullmatch(value, r) for r in routes), f"{name}: {value} matches none"


def test_rules_are_unique_and_select_the_pod_monitors_job() -> None:
    alerts = [alert for alert, _ in rule_exprs()]
    assert len(set(alerts)) == len(alerts)
    deployment = one(render(DEPLOY / "base"), "Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    jobs = {
        value for _, expr in rule_exprs() for label, _, value in matchers(expr) if label == "job"
    }
    assert jobs == {pod_labels[MONITOR.spec.jobLabel]}
    assert all(re.search(r'job="', expr) for _, expr in rule_exprs())


@pytest.mark.parametrize(
    ("field", "value"),
    [("labels", {}), ("for", "ten minutes"), ("annotation", None), ("expr ", "up")],
    ids=["no-severity", "bad-duration", "no-summary", "unknown-field"],
)
def test_rule_model_rejects_a_broken_rule(field: str, value: Any) -> None:
    broken = json.loads(json.dumps(RULES_DOC))
    rule = broken["spec"]["groups"][0]["rules"][0]
    if field == "annotation":
        del rule["annotations"]["summary"]
    else:
        rule[field] = value
    with pytest.raises(ValidationError):
        PrometheusRule.model_validate(broken)


def test_pod_monitor_scrapes_the_deployments_metrics_port() -> None:
    deployment = one(render(DEPLOY / "base"), "Deployment")
    template = deployment["spec"]["template"]
    pod = pod_spec(deployment)
    assert pod is not None
    assert MONITOR.spec.selector.matchLabels.items() <= template["metadata"]["labels"].items()
    ports = {p["name"] for c in pod["containers"] for p in c["ports"]}
    for endpoint in MONITOR.spec.podMetricsEndpoints:
        assert endpoint.port in ports
        assert endpoint.path == template["metadata"]["annotations"]["prometheus.io/path"]


def test_monitoring_renders_into_the_base_namespace() -> None:
    docs = render(MONITORING)
    assert sorted(d["kind"] for d in docs) == ["PodMonitor", "PrometheusRule"]
    namespace = one(render(DEPLOY / "base"), "Namespace")["metadata"]["name"]
    assert {d["metadata"]["namespace"] for d in docs} == {namespace}


def test_dashboard_structure() -> None:
    assert DASH["uid"] and DASH["title"] and isinstance(DASH["schemaVersion"], int)
    assert VARIABLES["datasource"]["type"] == "datasource"
    assert VARIABLES["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in DASH["panels"]]
    assert len(set(ids)) == len(ids) and all(isinstance(i, int) for i in ids)
    for panel in DASH["panels"]:
        grid = panel["gridPos"]
        assert set(grid) == {"h", "w", "x", "y"} and grid["x"] + grid["w"] <= 24, panel["title"]
    for panel in PANELS:
        assert panel["datasource"] == DATASOURCE and panel["targets"], panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert len(set(refs)) == len(refs), panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE and target["expr"].strip(), panel["title"]
        if "repeat" in panel:
            assert VARIABLES[panel["repeat"]].get("multi"), panel["title"]
    for variable in VARIABLES.values():
        if variable["type"] == "query":
            assert variable["datasource"] == DATASOURCE, variable["name"]


def test_dashboard_variables_exist() -> None:
    texts = [expr for _, expr in ALL_EXPRS] + [p["title"] for p in PANELS]
    used = {name for text in texts for name in re.findall(r"\$\{?(\w+)", text)}
    assert used - GRAFANA_BUILTINS <= set(VARIABLES)


@pytest.mark.parametrize(
    ("alert", "metric", "threshold"),
    [
        ("HelpdeskScorerScoreDrift", "helpdesk_score_drift_psi", PSI_ALERT),
        ("HelpdeskScorerNonEnglish", "helpdesk_non_english_share", NON_ENGLISH_ALERT),
    ],
)
def test_drift_and_language_alerts_use_the_servers_thresholds(
    alert: str, metric: str, threshold: float
) -> None:
    """The rule and the dashboard's red line are the constants serving/ defines, not copies
    that could drift apart."""
    (expr,) = [e for name, e in rule_exprs() if name == alert]
    found = re.fullmatch(rf"\s*max by \([a-z, ]+\) \({metric}\{{[^}}]*\}}\) > ([0-9.]+)\s*", expr)
    assert found is not None and float(found[1]) == threshold, expr
    (panel,) = [p for p in PANELS if any(metric in t["expr"] for t in p["targets"])]
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None, threshold], panel["title"]
