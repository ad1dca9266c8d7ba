"""Create the `user` table (and Aerich's own `aerich` table).

Aerich migrations are raw SQL for one dialect; this one carries the SQL for each
database we support and picks it by the connection's dialect.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS "user" (
    "id" CHAR(36) NOT NULL PRIMARY KEY,
    "email" VARCHAR(320) NOT NULL UNIQUE,
    "hashed_password" VARCHAR(1024) NOT NULL,
    "is_active" INT NOT NULL,
    "is_superuser" INT NOT NULL,
    "is_verified" INT NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "updated_at" TIMESTAMP NOT NULL
) /* A user account; its e-mail is stored normalized, in lower case. */;
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSON NOT NULL
);""",
    "postgres": """
CREATE TABLE IF NOT EXISTS "user" (
    "id" UUID NOT NULL PRIMARY KEY,
    "email" VARCHAR(320) NOT NULL UNIQUE,
    "hashed_password" VARCHAR(1024) NOT NULL,
    "is_active" BOOL NOT NULL,
    "is_superuser" BOOL NOT NULL,
    "is_verified" BOOL NOT NULL,
    "created_at" TIMESTAMPTZ NOT NULL,
    "updated_at" TIMESTAMPTZ NOT NULL
);
COMMENT ON TABLE "user" IS 'A user account; its e-mail is stored normalized, in lower case.';
CREATE TABLE IF NOT EXISTS "aerich" (
    "id" SERIAL NOT NULL PRIMARY KEY,
    "version" VARCHAR(255) NOT NULL,
    "app" VARCHAR(100) NOT NULL,
    "content" JSONB NOT NULL
);""",
    # The e-mail compares as bytes: MariaDB's default collation is case- and
    # accent-insensitive, which would make jose@ and josé@ one account.
    "mysql": """
CREATE TABLE IF NOT EXISTS `user` (
    `id` CHAR(36) NOT NULL PRIMARY KEY,
    `email` VARCHAR(320) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL UNIQUE,
    `hashed_password` VARCHAR(1024) NOT NULL,
    `is_active` BOOL NOT NULL,
    `is_superuser` BOOL NOT NULL,
    `is_verified` BOOL NOT NULL,
    `created_at` DATETIME(6) NOT NULL,
    `updated_at` DATETIME(6) NOT NULL
) CHARACTER SET utf8mb4 COMMENT='A user account; its e-mail is stored normalized, in lower case.';
CREATE TABLE IF NOT EXISTS `aerich` (
    `id` INT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `version` VARCHAR(255) NOT NULL,
    `app` VARCHAR(100) NOT NULL,
    `content` JSON NOT NULL
) CHARACTER SET utf8mb4;""",
}

# Aerich records each applied version in its own table, so that one stays.
DOWNGRADE = {
    "sqlite": 'DROP TABLE IF EXISTS "user";',
    "postgres": 'DROP TABLE IF EXISTS "user";',
    "mysql": "DROP TABLE IF EXISTS `user`;",
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that applies this migration on `db`'s dialect."""
    return UPGRADE[db.capabilities.dialect]


async def downgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that reverts this migration on `db`'s dialect."""
    return DOWNGRADE[db.capabilities.dialect]


MODELS_STATE = (
    "eJztl21P2zAQx7+KlVdMgqqE8qBtmtRCJzrRdoJ0m5imyI3d1sKxQ+xQOsZ3n+0mzVNT6A"
    "QMEG9Q8787+/hd7MvdWD5HmIraQODQeg9uLAZ9rH7k9E1gwSBIVS1IOKTGMUo8hkKG0JNK"
    "G0EqsJIQFl5IAkk4055NoH0B9DweMfkBECkA3vIhoYAIICQPMQKMhz6k5DdGm4AwQPlUhX"
    "hQ4JreBHFP7ULY+IHWixi5jLAr+RjLiSHw85eSCUP4GovkMbhwRwRTlANEkF7A6K6cBUYb"
    "DDpHn42nznXoepxGPku9g5mccLZwjyKCajpG28aY4RBKjDIAWURpzDmR5hkrQYYRXqSKUg"
    "HhEYyoLoP1cRQxT9MHZif9p/EpTi3j5rq9vuOetR3XtUpV0ykUwMeSx5muOGFSg7q5na+b"
    "AjGqpTc4PG6ebuzsvTMIuJDj0BgNLuvWBEIJ56EGekoZ63KWQR9OYLgc9CKgwFql+jiUE0"
    "CPgNTy4bVLMRvLiXrcsesrGH9rns4x23XDmauzOD+gvdhkz22ad8p3AsUEIzeAQkx5uOSV"
    "ria9JPRhmCdCCj29UJ6c+nbdbtwDu3ar5D435sET4arLklzhMvIW5xRDVnGRZOMKvIcq8L"
    "GAJ+/9094crX7/RK/sC3FJjdBxCpQH3VZb8TfwlRORRu70nDJwEQU4TPrVesxzoU+IfaG8"
    "ZO5XOCRqlyW3y13Ys5Fv1Neg7oVYM3GhLEM/UhZJfLycej6yAB3FobXkx0u839U/iPqMzu"
    "JbbUVBnE63feY0u19zVTlqOm1tsY06K6gbe4U+sFgEfO84x0A/gvN+r138Glr4OeeWzglG"
    "kruMT12IMh8eiZpQy1U9CtA/Vj0f+Vb151L1hFGm7CZ7PZaMLjKfzFoYQu9iCkPklizc5l"
    "W+ZZNv+0UFMjg2NdNwdZrxeNhU97M3sZYMjrFlc9XoCFOfu4bH6jo/8AjXYXKNCU69XcWz"
    "EJ/T5ztUjHUKW/Z2Y79xsLPXOFAuJs2Fsr/ibCSdpnpiUy1b6JRKZKsniUzIK5wg7N3dew"
    "wQyqtyfjC2fH/Xh2oNwrH7K6S7Xb/PVKy8VkxnpalY7SgxW9JEv5z1exWfTWlIsXsST4I/"
    "gBJRuiteAO0VcDWMXItMmG50mz+KuA9P+q1i79MLtBT6/9rMbv8CT0G2DQ=="
)
