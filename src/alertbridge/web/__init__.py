"""The web face beyond the webhooks: the admin API (`admin.py`), the console under /ui (`console.py`, `ui/`),
and the queries the console, the API and the CLI share (`queries.py`)."""
