"""Alembic environment: runs the migrations on the connection handed over by ``db.upgrade``."""

from alembic import context

from alignkit.annotate.db import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
