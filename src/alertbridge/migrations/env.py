"""Alembic environment: run migrations on the URL handed over by `alertbridge db upgrade`."""

from alembic import context
from sqlalchemy import create_engine

from alertbridge.store.tables import metadata

url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
engine = create_engine(url)
with engine.connect() as connection:
    # render_as_batch lets ALTER TABLE migrations work on SQLite, which can't alter columns in place.
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
