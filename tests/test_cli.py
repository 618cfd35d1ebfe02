"""The `alertbridge` command as an operator uses it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from alertbridge.cli import app
from conftest import vendor_path

runner = CliRunner()


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        f"database: sqlite:///{tmp_path / 'cli.db'}\n"
        "sources:\n  gen: {type: generic, auth: {mode: none}}\n  splunk: {type: splunk, auth: {mode: none}}\n"
        "sinks:\n  cases: {type: http, url: 'http://127.0.0.1:9'}\n"
        "routes:\n  - {name: all, sink: cases}\n"
    )
    return path


def invoke(*args: str):
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_parse_prints_normalized_alerts_and_stores_nothing(tmp_path):
    code, output = invoke("parse", "--type", "splunk", str(vendor_path("splunk/alert-webhook-search-one-result.json")))
    assert code == 0, output
    (alert,) = json.loads(output)
    assert alert["title"] == "sudo" and alert["observables"]["hosts"] == ["myserver"] and "raw" not in alert
    assert not list(tmp_path.iterdir())


def test_parse_reports_a_bad_payload(tmp_path):
    payload = tmp_path / "p.json"
    payload.write_text('{"nothing": "useful"}')
    code, output = invoke("parse", "--type", "splunk", str(payload))
    assert code == 1 and "p.json" in output
    code, output = invoke("parse", "--type", "splonk", str(payload))
    assert code == 1 and "unknown source type 'splonk'" in output


@pytest.mark.parametrize("sample", ["phishing-eml/bbva-impersonation-transfer-phish.eml",
                                    "phishing-eml/malspam-invoice-js-attachment-stripped.eml"])
def test_parse_reads_a_raw_eml_for_the_mailbox_source(sample):
    code, output = invoke("parse", "--type", "imap", "--raw", str(vendor_path(sample)))
    assert code == 0, output
    (alert,) = json.loads(output)
    assert alert["category"] == "phishing" and alert["raw"]["found_as"] == "message"
    assert alert["raw"]["received_ips"] and alert["raw"]["headers"] and alert["evidence"][0]["filename"] == "original.eml"
    assert "content" not in alert["evidence"][0]  # the bytes never leave the parse


def test_parse_of_a_file_that_is_no_mail_says_why(tmp_path):
    payload = tmp_path / "not.eml"
    payload.write_bytes(b"\x00\x01 not a message")
    code, output = invoke("parse", "--type", "imap", str(payload))
    assert code == 1 and "not.eml: malformed MIME" in output


def test_send_status_and_the_dead_letter_list(tmp_path, config):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps({"id": "1", "title": "Beaconing"}))
    bad.write_text(json.dumps({"id": "2"}))  # parses as JSON, but has no title
    code, output = invoke("send", "--config", str(config), "--source", "gen", str(good), str(bad))
    assert code == 0, output
    assert "stored as inbox event 1" in output and "stored as inbox event 2" in output

    import asyncio

    from alertbridge.config import load_config
    from alertbridge.service import Hub

    async def process():
        hub = Hub(load_config(config))
        await hub.pipeline.process_batch()
        await hub.aclose()

    asyncio.run(process())
    code, output = invoke("status", "--config", str(config))
    assert code == 0 and "inbox_dead=1" in output
    assert "gen|Beaconing" in output
    code, output = invoke("dlq", "list", "--config", str(config))
    assert code == 0 and "ingest" in output and "1 dead job(s)" in output
    assert output.splitlines()[0] == "id\tkind\tcase\tattempts\tfailed at\treason"
    job_id = output.splitlines()[1].split("\t")[0]
    code, output = invoke("dlq", "show", "--config", str(config), job_id)
    assert code == 0 and json.loads(output)["raw_body"] == bad.read_text()
    assert invoke("dlq", "replay", "--config", str(config), job_id)[1].strip() == "replayed 1 job(s)"
    assert invoke("dlq", "replay", "--config", str(config), job_id)[0] == 1  # not dead any more
    assert invoke("dlq", "replay", "--config", str(config))[0] == 2  # neither an id nor --all


def test_send_refuses_unknown_sources_and_non_json(tmp_path, config):
    payload = tmp_path / "x.json"
    payload.write_text("not json")
    assert "unknown source 'nope'" in invoke("send", "--config", str(config), "--source", "nope", str(payload))[1]
    code, output = invoke("send", "--config", str(config), "--source", "gen", str(payload))
    assert code == 1 and "body is not JSON" in output


def test_db_upgrade(config):
    assert invoke("db", "upgrade", "--config", str(config)) == (0, "database is up to date\n")


def test_parse_needs_no_credentials_for_a_polled_source():
    code, output = invoke("parse", "--type", "defender", str(vendor_path("msgraph/security-alerts_v2-list-response.json")))
    assert code == 0, output
    (alert,) = json.loads(output)
    assert alert["vendor_id"] == "da637551227677560813_-961444813" and alert["source"]["type"] == "defender"
