"""Run the CLI as `python -m alertbridge`."""

from .cli import app

app()
