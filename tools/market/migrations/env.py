"""Alembic environment of the advertiser store (tools.market.schema is the target).

The connection: one handed in by `tools.market.db.migrate` (config.attributes["connection"]), else the URL
from `-x url=...`, the config's sqlalchemy.url, $ADGUIDE_STORE_URL, or the default SQLite file.
"""

from __future__ import annotations

import logging.config

import sqlalchemy as sa
from alembic import context

from tools.market.db import parse_location, sqlalchemy_url
from tools.market.schema import metadata
from tools.market.store import default_world_path

config = context.config
if config.config_file_name is not None:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    given = context.get_x_argument(as_dictionary=True).get("url") or config.get_main_option("sqlalchemy.url")
    return sqlalchemy_url(parse_location(given or None, default_world_path()))


def _run(connection: sa.Connection) -> None:
    # render_as_batch: SQLite alters tables by copying them; compare_type: a changed column type is drift
    context.configure(
        connection=connection, target_metadata=metadata, render_as_batch=True, compare_type=True
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    context.configure(url=_url(), target_metadata=metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (shared := config.attributes.get("connection")) is not None:
    _run(shared)
else:
    engine = sa.create_engine(_url(), poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        _run(conn)
