"""Local, faithful emulators of the vendor APIs the hub talks to (Jira first), for tests, the demo and benchmarks."""
