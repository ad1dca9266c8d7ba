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
    "eJztW21zGjcQ/isaPjkzxIMxjl230xlwnIYmhk6M206SzlmcBKg+JCLpTNzU/70r3R33js"
    "HBNqZ8MXfSrl6elfZWj9bfKmNBqKd2mz5h+vSacl05Rt8qHI8pPBTUVlEFTyZxnSnQuO9Z"
    "cWzkHDoT7CstsWuaHGBPUSgiVLmSTTQT3Cg0kaKuL5m+QVbrGE1HAhFG4BdrpAX8MneEsO"
    "sKn+sqvFJeRQMpxuZRQpNTpkeBtPC1K8Z013RNhAt9Mz58sF4+88/8kpFLNJRiqgIBzcYg"
    "qwRiICcJlSroUCHMCQxCXlN4VEiPKJrgIePYAIFgbEpIaPGSUI2Zpy7RSHgERNGATgE7F1"
    "rYGTDqEWQso6pQIymBckoQJkRSpV5UEYfOJFTBbCXVFgefsy8+dbQYUuhUAhqf/oJixgn9"
    "SpV5/VRRfv9v6mqHEaMBf0HiUwUaN0YKS4zS5MqxY0itkEDJljv6ZmLLWmzY5vqNlTW26D"
    "uu8Pwxj+UnN3ok+EyBBetlSDmVGOYEZVr6Zr1w3/PC1RUtoWBKsUgwl4QOoQPse2bVGe1g"
    "AHFZxXE63Z5zftpznEpuRUYaieUTFrmCm9UMQ1UWgKEZwssf6vX9/cN6bf/V0UHj8PDgqH"
    "YEsna8+arD22AwMVpBUxaz9i/tTs8MSMCWCbaTKbi1OljjQMuaLEYf7GzwcrDOW+E11JgF"
    "WWyHtGbGHiRU3Y0estaJbDHPPFHBE9kH5ke63LsJ+50Dfa99dnrea579ZrobK/XFs/A1e6"
    "empm5LbzKlO69epG01awT90e69ReYVfex2Ti26QumhtD3Gcr2PFTMm7GvhcDF1YBvHEEWl"
    "EYwgGRs93plpg5+MsCw2dqyRMTQgthrTxv79MWw7xl8dj/KhHsHrfn2ObX9vfjh52/yws1"
    "/P2KsT1tRt1W0K4NDFL4NwQuXxIAbP7brg+ivPFGdYlkI6RV+Qi4v269KlPNPJIO37jOwa"
    "zQXwDvfZuqzoOcgGsAbuJulI7ETTeKY/5IsimtbaYprG1PUYBHAOmyzjDVJK9/IHa4Zl2h"
    "M0DhbwBI2DUk9gqtIo+xAbO3gYnhsWhTmttXk41w8WARqkSpG2dWmoJYWZqmInUQ51Wmvz"
    "oN6rHy0ANUiVQm3r0lCHp7k8zr+edzvFOCdUsjE5czX6F3lM5c5KK4snfhr43IaKqO8zTz"
    "Oudk23Pz9UgDEHcgNRKh6PkN45a/6ZNcLJ+24r68tNAy0wiDm5Dq4SpydT0Mfu1RRL4uRq"
    "RF2UyearxvVxtgRzcEgknLGZX0ihnEOcFqCTY1eiqup8akWPHJWQXIBb8cSQ8WPLNlwqQ1"
    "WIAWKGjLBRI9LiivKAmjAi4Yoy1g/lJB0AmKNAsIhWWW0HhlHpCBRshhkDAgdVAh6eYe/Y"
    "sh4JDcRM4+jtWfPEtLjDSDUScCyTQ+WLz9yHFS/tAAJexBI05tVii7AnOEUeheFwgcwz4w"
    "tSJ0uRIuUB2HcHXvdgRhJb3fZk/jSeYp/fGYptCvnxuB+3DWY/jCOMzLKM0VOKG2jzZ2Lj"
    "CJO5RvYwxJqhK7/XDi9sYGv0tTY6/Tph0Nw9rJ3W3Dwye5OsnAnQ8qYuvToq0Lz7HmlVe7"
    "j2UF/q4B6pvtc4bBztv2rMro9mJfNujaIboiS81xAa38dlpjVXsInW7MC/WZsosBWEeWq5"
    "q6C85uaROau/qViO/t3yvlved+14XwvacsREQmWV7MTaxlJ3cBE5JjENbh7ZN0JSNuTv6I"
    "3Ftw3jwNwtOn+GTOBF2MyzRDQujfuXeDqjx5LLCaYOE6Y62OjN85Pm69PK7dMwsxb0Alo2"
    "MkY5JxtZfREu1shGCWY/WvKTvhxj5hkOU2lYKARxIcfYY/9QUkWMI09MQcXFqjCj7bvbWy"
    "QzLM2TLZ0HtqU8V015UmPiZT6VM4XVZKU8bcpdJsirLRTl1eaEebXsR3KELV00wUpNhVzq"
    "hrRAdQOTrfZq9cYiF6UgVn5TaiszAbZyTJLadQGr2xLCo5iXOJKkXgbvPig+FODRun9cz9"
    "Hqdt+njqitdiZltHNx1joF/C34IMSCT2yeJwDglD+hsjhyuQvzlOojwj4rec64X1PJoJei"
    "xOk7YE9qblFfAvXtVWG5f9/cq0J/Qu5p9bTm1urrYvUCctSOfokkn0S6bJBNU5Cf1Qo137"
    "z7QD1ckjufz955Zmug7Nx++5Cn7SZ8wtxRpeifzIKa6twsqFjmrjN3OQwrTuz5v/yr03de"
    "UZUfaiGqiXbQooethMoGHrIehP81m2oJhEPxDUR3r7YIcQBScw6wOeIAetSFtxjlqb4Jlc"
    "dP9X0agn0zknpv/wOC36ip"
)
