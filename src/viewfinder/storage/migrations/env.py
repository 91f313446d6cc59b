"""Alembic environment: the URL comes from the caller (``catalog.migrate``)."""

from alembic import context

from viewfinder.storage.catalog import make_engine, metadata

url = context.config.attributes.get("url") or context.config.get_main_option("sqlalchemy.url")
engine = make_engine(url)
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
