"""The registry: every connector type, one line each, imported only when used."""

from __future__ import annotations

import importlib
from typing import Any

SOURCES = {
    "generic": "alertbridge.connectors.generic:GenericSource",
    "splunk": "alertbridge.connectors.splunk:SplunkSource",
    "jira": "alertbridge.connectors.jira.webhook:JiraWebhookSource",
    "aws_security_ir": "alertbridge.connectors.aws_security_ir.poller:AwsSecurityIrSource",
    "crowdstrike": "alertbridge.connectors.crowdstrike.webhook:CrowdStrikeSource",
    "crowdstrike_alerts": "alertbridge.connectors.crowdstrike.poller:CrowdStrikeAlertsPoller",
    "alertmanager": "alertbridge.connectors.alertmanager:AlertmanagerSource",
    "cortex_xdr": "alertbridge.connectors.cortex_xdr:CortexXdrPoller",
    "defender": "alertbridge.connectors.defender.poller:DefenderSource",
    "mcas": "alertbridge.connectors.mcas.poller:McasSource",
    "proofpoint_tap": "alertbridge.connectors.proofpoint_tap:ProofpointTapSource",
    "prisma_cloud": "alertbridge.connectors.prisma_cloud:PrismaCloudSource",
    "qualys_vm": "alertbridge.connectors.qualys.vm:QualysVmPoller",
    "qualys_pc": "alertbridge.connectors.qualys.pc:QualysPcPoller",
    "qualys_fim": "alertbridge.connectors.qualys.fim:QualysFimPoller",
    "sonarqube": "alertbridge.connectors.sonarqube:SonarQubeSource",
    "imap": "alertbridge.connectors.imap:ImapSource",
    "servicenow": "alertbridge.connectors.servicenow.webhook:ServiceNowWebhookSource",
    "servicenow_reconcile": "alertbridge.connectors.servicenow.poller:ServiceNowReconcilePoller",
}
SINKS = {
    "jira": "alertbridge.connectors.jira.sink:JiraSink",
    "http": "alertbridge.connectors.http_sink:HttpSink",
    "servicenow": "alertbridge.connectors.servicenow.sink:ServiceNowSink",
}
NOTIFIERS = {
    "slack": "alertbridge.connectors.slack:SlackNotifier",
    "teams": "alertbridge.connectors.teams:TeamsNotifier",
    "pagerduty": "alertbridge.connectors.pagerduty:PagerDutyNotifier",
}
REVIEWS = {
    "confluence": "alertbridge.connectors.confluence:ConfluenceReviews",
}
WRITEBACKS = {
    "aws_security_ir": "alertbridge.connectors.aws_security_ir.writeback:SecurityIrUpdater",
    "defender": "alertbridge.connectors.defender.writeback:DefenderUpdater",
    "crowdstrike": "alertbridge.connectors.crowdstrike.writeback:CrowdStrikeUpdater",
    "cortex_xdr": "alertbridge.connectors.cortex_xdr.writeback:CortexXdrUpdater",
    "splunk_hec": "alertbridge.connectors.splunk_hec:SplunkHec",
    "signed_webhook": "alertbridge.connectors.signed_webhook:SignedWebhook",
}
ENRICHERS = {
    "abuseipdb": "alertbridge.connectors.abuseipdb:AbuseIpdbEnricher",
}


def load(registry: dict[str, str], type_name: str) -> Any:
    """Import and return the connector class registered under `type_name`."""
    module_name, _, class_name = registry[type_name].partition(":")
    return getattr(importlib.import_module(module_name), class_name)
