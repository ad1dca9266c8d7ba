"""Admin user list (written by `make migration name=admin_user_list`, then edited).

The index on (created_at, id) serves the list's order and cursor. On PostgreSQL the
e-mail column gets the "C" collation (added by hand: Tortoise models no collation), so
its unique index, which compares bytes like SQLite's and MariaDB's utf8mb4_bin, also
serves the list's e-mail prefix search as a range; under a linguistic collation a
prefix is no range of the index and the search would scan the table.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": """
CREATE INDEX "idx_user_created_5e2aef" ON "user" ("created_at", "id");""",
    "postgres": """
CREATE INDEX IF NOT EXISTS "idx_user_created_5e2aef" ON "user" ("created_at", "id");
ALTER TABLE "user" ALTER COLUMN "email" TYPE VARCHAR(320) COLLATE "C";""",
    "mysql": """
ALTER TABLE `user` ADD INDEX `idx_user_created_5e2aef` (`created_at`, `id`);""",
}

DOWNGRADE = {
    "sqlite": """
DROP INDEX IF EXISTS "idx_user_created_5e2aef";""",
    "postgres": """
ALTER TABLE "user" ALTER COLUMN "email" TYPE VARCHAR(320) COLLATE "default";
DROP INDEX IF EXISTS "idx_user_created_5e2aef";""",
    "mysql": """
ALTER TABLE `user` DROP INDEX `idx_user_created_5e2aef`;""",
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that applies this migration on `db`'s dialect."""
    return UPGRADE[db.capabilities.dialect]


async def downgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that reverts this migration on `db`'s dialect."""
    return DOWNGRADE[db.capabilities.dialect]


MODELS_STATE = (
    "eJztl21P2zAQx7+KlVdMAlRCedA2TWqhE52gnSBsEwhFbuy2FokdYofSMb77fG7SNElT6A"
    "QMEG+q5n939uV38cPdWoEg1Jfrp5JG1kd0a3EcUP0np68iC4dhpoKgcM83jnHq0ZMqwp7S"
    "Wh/7kmqJUOlFLFRMcPBsIPBF2PNEzNUnxJREdC3AzEdMIqlERAniIgqwz35TsooYR74Y6R"
    "APS7oOkxDh6VkYHzzSeDFnVzF1lRhQNTQEzi+0zDihN1TC47nlRRQrSlysIIIR6wJcwku3"
    "z6hPctC0UZuM7qpxaLTT0/b+V+MJ+fdcT/hxwDPvcKyGgk/d45iRdYgB24ByGsHkM1B57P"
    "sJ+1SavIUWVBTTafokEwjt49iH0lif+zH3oCLIzAQ/9S9JajNurtvpOu5Jy3Fdq1RJSKFQ"
    "jETyBIevgHEF8G7vJuNmQIxqwQR7B43jlc3tDwaBkGoQGaPBZd2ZQKzwJNQUIqNMocRl0H"
    "tDHM0HPQ0osNapPg3lFNATILUCfOP6lA/UUD9u2rUFjH80jieY7ZrhLPT6nCzaTmKyJzbg"
    "nfEdYjnU33uIpRyJaM4nXU16TujjME+FDHq2yTw79Y2aXX8AdnCr5D4x5sEz6eoNlF3TMv"
    "KmED7FvGIjmY0r8O7pwKcCnn73z7tzNLvdQxg5kPLKN0LbKVA+PWq2NH8DXzsxZeR2xykD"
    "l3FIo/QMW455LvQZsU+V18z9mkZMzzJnd7kP+2zkO/UlqOcvMnno+9qiWEDnU89HFqCTJH"
    "Q9/fMa93f9gqTL/XGyqy0oiNM+ap04jaPvuarsN5wWWGyjjgvqynbhHJgOgn62nQMEj+is"
    "22kVb0NTP+fMgpxwrITLxcjFZObikaoptVzV45D8Y9Xzke9VfylVTxnNlN1kD21J/3Lmyg"
    "xCD3uXIxwRt2QRtqjyLZsCOygqmOOBqRnAhTSTlrGh92dvaM1pJhPL6qJ2Emc+9zWU1XW+"
    "v61bqoVrc7VEB6e/ruJaSNbpy20qBpDCmr1R36nvbm7Xd7WLSXOq7CxYG+lJU92x6SNbQk"
    "olstWdxEzIG+wg7K2tBzQQ2quyfzC2/PkOi2oJwon7G6S7UXtIV6y9FnRnpa5Yz6gon3OI"
    "fjvpdiquTVlI8fRknkJ/kM9kaa94BbQXwAUYuSMyZbpy1PhVxL132G0Wzz4YoKnR/9fD7O"
    "4vVYy8cg=="
)
