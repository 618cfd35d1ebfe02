"""The shipped alerting rules and dashboard: they parse, fire as meant, and name only metrics the hub exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml
from prometheus_client.metrics import MetricWrapperBase

from alertbridge import metrics
from conftest import unavailable

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alertbridge-rules.yaml"
RULE_TESTS = REPO / "deploy" / "prometheus" / "alertbridge-rules.test.yaml"
DASHBOARD = REPO / "deploy" / "grafana" / "alertbridge-dashboard.json"
METRIC_NAME = re.compile(r"\balertbridge_[a-z_]+\b")


def exported_names() -> set[str]:
    """Return every sample name the hub's metrics expose (counters as _total, histograms as _bucket/_sum/_count)."""
    names = set()
    for value in vars(metrics).values():
        if not isinstance(value, MetricWrapperBase):
            continue
        for family in value.describe():
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}.get(family.type, [""])
            names |= {family.name + suffix for suffix in suffixes}
    return names


def promtool() -> str:
    """Return promtool's path; without it fail under CI (scripts/ensure-promtool.sh installs it) or skip."""
    path = shutil.which("promtool")
    if path is None:
        unavailable("promtool is not installed (scripts/ensure-promtool.sh installs it)")
    return path


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def test_rules_are_valid_promql():
    result = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 10 rules found" in result.stdout


def test_rules_fire_as_their_unit_tests_say():
    result = subprocess.run([promtool(), "test", "rules", RULE_TESTS.name], capture_output=True, text=True, cwd=RULES.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_is_actionable():
    for rule in rules():
        assert rule["alert"].startswith("Alertbridge"), rule
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]


def test_rules_and_dashboard_name_only_exported_metrics():
    known = exported_names()
    used = {name for text in [r["expr"] for r in rules()] + dashboard_exprs() for name in METRIC_NAME.findall(text)}
    assert used, "no metric found in the rules or dashboard"
    assert used <= known, f"unknown metrics: {sorted(used - known)}"


def test_dashboard_queries_parse(tmp_path):
    # promtool has no bare expression check in Debian's 2.42: wrap each query in a recording rule and check those.
    as_rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{i}", "expr": expr} for i, expr in enumerate(dashboard_exprs())
    ]}]}
    path = tmp_path / "dashboard-rules.yaml"
    path.write_text(yaml.safe_dump(as_rules))
    result = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_panels_are_well_formed():
    data = json.loads(DASHBOARD.read_text())
    ids = [panel["id"] for panel in data["panels"]]
    assert len(ids) == len(set(ids)) == 14
    assert data["uid"] == "alertbridge-overview"
    for panel in data["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert [t["refId"] for t in panel["targets"]] == [chr(65 + i) for i in range(len(panel["targets"]))]


def test_every_metric_is_documented():
    operations = (REPO / "docs" / "operations.md").read_text()
    families = {f.name for v in vars(metrics).values() if isinstance(v, MetricWrapperBase) for f in v.describe()}
    missing = sorted(name for name in families if name not in operations)
    assert not missing, f"metrics missing from docs/operations.md: {missing}"
