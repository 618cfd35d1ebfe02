"""One sandbox server: the Jira emulator at the root and each polled vendor's emulator under /<type>.

A source pointed at the sandbox uses `url: http://127.0.0.1:8081/<type>`; each
emulator serves its vendor's paths below that prefix, as the real API does
below its host. Each emulator keeps its own faults and call log.
"""

from __future__ import annotations

import importlib

from starlette.applications import Starlette
from starlette.routing import Mount

from .jira import JiraSandboxSettings, create_app

# URL prefix -> module whose create_app() builds that vendor's emulator, one line each.
EMULATORS = {
    "aws_security_ir": "alertbridge.sandbox.aws_security_ir",
    "abuseipdb": "alertbridge.sandbox.abuseipdb",
    "crowdstrike_alerts": "alertbridge.sandbox.crowdstrike",
    "cortex_xdr": "alertbridge.sandbox.cortex_xdr",
    "defender": "alertbridge.sandbox.defender",
    "mcas": "alertbridge.sandbox.mcas",
    "proofpoint_tap": "alertbridge.sandbox.proofpoint_tap",
    "prisma_cloud": "alertbridge.sandbox.prisma_cloud",
    "qualys": "alertbridge.sandbox.qualys",
    "sonarqube": "alertbridge.sandbox.sonarqube",
    "slack": "alertbridge.sandbox.slack",
    "teams": "alertbridge.sandbox.teams",
    "pagerduty": "alertbridge.sandbox.pagerduty",
    "confluence": "alertbridge.sandbox.confluence",
    "servicenow": "alertbridge.sandbox.servicenow",
    "splunk_hec": "alertbridge.sandbox.splunk_hec",
}


def create_sandbox(settings: JiraSandboxSettings | None = None) -> Starlette:
    """Build the Jira emulator and mount every vendor emulator beside it."""
    vendors = [Mount(f"/{prefix}", app=importlib.import_module(module).create_app()) for prefix, module in EMULATORS.items()]
    return Starlette(routes=[*vendors, Mount("/", app=create_app(settings))])


def serve(host: str, port: int, settings: JiraSandboxSettings) -> None:
    """Run the emulators with uvicorn until interrupted: Jira at the root, other vendors under /<type>."""
    import uvicorn

    uvicorn.run(create_sandbox(settings), host=host, port=port, log_level="warning")
