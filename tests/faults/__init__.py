"""Fault-injection tests: failpoint kills, a faulty Jira, a PostgreSQL restart (docs/faults.md)."""
