"""Create the `auth_session` table: one row per login (see app/sessions.py).

Like the init migration, this one carries the SQL for each database we support and
picks it by the connection's dialect. The indexes serve the queries: `user_id` for a
user's sessions, `expires_at` for the purge of ended rows.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS "auth_session" (
    "id" CHAR(36) NOT NULL PRIMARY KEY,
    "created_at" TIMESTAMP NOT NULL,
    "auth_time" TIMESTAMP NOT NULL,
    "last_refreshed_at" TIMESTAMP NOT NULL,
    "expires_at" TIMESTAMP NOT NULL,
    "refresh_counter" INT NOT NULL,
    "revoked_at" TIMESTAMP,
    "revoked_reason" VARCHAR(32),
    "ip" VARCHAR(45),
    "user_agent" VARCHAR(255),
    "user_id" CHAR(36) NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE
) /* A login: the `sid` of its access tokens and the generation of its refresh token. */;
CREATE INDEX IF NOT EXISTS "idx_auth_sessio_expires_71dc16" ON "auth_session" ("expires_at");
CREATE INDEX IF NOT EXISTS "idx_auth_sessio_user_id_658197" ON "auth_session" ("user_id");""",
    "postgres": """
CREATE TABLE IF NOT EXISTS "auth_session" (
    "id" UUID NOT NULL PRIMARY KEY,
    "created_at" TIMESTAMPTZ NOT NULL,
    "auth_time" TIMESTAMPTZ NOT NULL,
    "last_refreshed_at" TIMESTAMPTZ NOT NULL,
    "expires_at" TIMESTAMPTZ NOT NULL,
    "refresh_counter" INT NOT NULL,
    "revoked_at" TIMESTAMPTZ,
    "revoked_reason" VARCHAR(32),
    "ip" VARCHAR(45),
    "user_agent" VARCHAR(255),
    "user_id" UUID NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS "idx_auth_sessio_expires_71dc16" ON "auth_session" ("expires_at");
CREATE INDEX IF NOT EXISTS "idx_auth_sessio_user_id_658197" ON "auth_session" ("user_id");
COMMENT ON TABLE "auth_session" IS 'A login: the `sid` of its access tokens and the generation of its refresh token.';""",
    "mysql": """
CREATE TABLE IF NOT EXISTS `auth_session` (
    `id` CHAR(36) NOT NULL PRIMARY KEY,
    `created_at` DATETIME(6) NOT NULL,
    `auth_time` DATETIME(6) NOT NULL,
    `last_refreshed_at` DATETIME(6) NOT NULL,
    `expires_at` DATETIME(6) NOT NULL,
    `refresh_counter` INT NOT NULL,
    `revoked_at` DATETIME(6),
    `revoked_reason` VARCHAR(32),
    `ip` VARCHAR(45),
    `user_agent` VARCHAR(255),
    `user_id` CHAR(36) NOT NULL,
    CONSTRAINT `fk_auth_ses_user_e8478734` FOREIGN KEY (`user_id`) REFERENCES `user` (`id`) ON DELETE CASCADE,
    KEY `idx_auth_sessio_expires_71dc16` (`expires_at`),
    KEY `idx_auth_sessio_user_id_658197` (`user_id`)
) CHARACTER SET utf8mb4 COMMENT='A login: the `sid` of its access tokens and the generation of its refresh token.';""",
}

DOWNGRADE = {
    "sqlite": 'DROP TABLE IF EXISTS "auth_session";',
    "postgres": 'DROP TABLE IF EXISTS "auth_session";',
    "mysql": "DROP TABLE IF EXISTS `auth_session`;",
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that applies this migration on `db`'s dialect."""
    return UPGRADE[db.capabilities.dialect]


async def downgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that reverts this migration on `db`'s dialect."""
    return DOWNGRADE[db.capabilities.dialect]


MODELS_STATE = (
    "eJztWm1v4jgQ/itWPnUltqKU7q56p5OgpSq3W1i19O6011PWjQ1YNTYbO325Xv/7jZ2EvJ"
    "BQ4EqPIr4gMi+28zz2ZGaSR2ckCeVq94IqxaRwDtGjI/CIwp+8qoIcPB4nCiPQ+JpbWxzo"
    "oatSltdK+9jToOtjriiICFWez8Y6nMZpIC4HTBwiPaTou2LkO5J9xLRC2PNgIKTlDRVwJY"
    "g1GVBBfWy8Yzuf9n2qhqHhrpmVSA+mZWKwigmuxJXoSORJHowEGkpOwBd5PiVUaIb5IVxl"
    "PBAzg6PTs8aRGXGHkUps4HoyEJr6765EIAj17QIUhcF0BSlpLy22CHMpKOIUliMkMv9ZeK"
    "+BYD8C6mo5oGDtwx3/+ReIGQx3T1V8Ob5x+4xykiGWETOAlbv6YWxll5ft4xNraXC8dsPb"
    "TKzHD3ooxcQ8CBjZNT5GFyFHSYptEXAebY5YFK4YBNoP6GSpJBEQ2scBN3vG+bkfCM9yYW"
    "cyP/VfoqWlzFy30+25F62e6zpTW8wsIbcpIpEnhdmeTGgD1ONTOG4CiJU6ZoKj08b5zv6H"
    "dxYCqfTAt0oLl/NkHbHGoasFPUEZyDSYuFhPo30MGs1GtBjxrGcOeRK57sZ/lmEgFiQUJK"
    "c0BjeGbwWAO3CDpCv4Q8T9DAJ67bPWRa9x9tVMN1LqB7f4NXoto6lZ6UNOuhPyJSEAhdFp"
    "Mgj6vd07ReYSfet2WnlWJ3a9b45ZE0Q16Qp552KS2qaxNEYNLBPWbSCMaVmE9IzjBnL+Rj"
    "iOMZlJMsdKu1EoX+qEFw6wJX2tSaf3YwbDLcF21vN1aJ56pG5ZnovlXII2TXVb6GKWCzxz"
    "VANeqzrD1VU9qQdmBe9re/WP9U/7H+qfwMSuciL5OIP9dqdnk6Q0vLeQGi8TMrOeL3CIoh"
    "OyDZWrOEQhV5DmqbAezDJ9NMT+bJYTzxzTANnb49YZ4XuXUzHQQ7jcr83g+rfGeVhz1HL8"
    "dSJNzaqyp4qNF8E4tN48XOsHc+BaPyjF1aiyuAaK+i4GTAqiVTm+Wa/Nw7l2MA/QYFWKtN"
    "UVQL1YYyLl8pLdibXNpZ7pRZh2T/+msBVhkJpG9kT6lA3EZ/pg8W3DOrDwiurPqBN4GQ3z"
    "JhFNpMn8Pr6btMfS2wluHW6Y6vCgNy6OGsctxwJ8jb2bO+wTN4O00ciazEkmttOqUW2Ul2"
    "ABIYNEd2HWnAa9oC0bk1Hek41Zn6cXa2xNX9Tkrj/Z5id9P8KMmx6m0rBRCBLSH2HO/qak"
    "gphAXN6Bi4cVLWq9/ufxtu3NNQgplRntTWroXOSxOHFY6om4BMqvmNBV58roqjNSumr+gT"
    "jEtjU0xkrdSb9gS5cjXeD6MpivVRqyV63V54DdmJXiHipzybRyIViy24IOblNKTrEoCSRp"
    "vxze1+C4KsDjff+6kaPZ7X7JlKPNdi+H8uVZswX4W/DBiIWP0+meAACngjH1i7OU5zDPuL"
    "4i7BPJW8b9lvoMZimILs/Bnvbcor4A6tvXguXxfXNfCwZjsiTrWc8t6+vCekEj1K5+qgwv"
    "LxuT7RF9OaMK4nDkefL5nHL7dUp5fZ76UueN7YGyGv1plZV1Ax5h3tApqK0jTWXmF0+JzX"
    "P1dTkML1zllr6bKixyC15HRaFsfeuuF3kdVV7UQlYTn6B5i62UywYWWSvp9ZpDtQDCkfkG"
    "ortXnadxAFYzCtipxgHMqAvfWPx60e2UZJaJSz7BYJ5G/yDO1MpeXf8/zXQDRiaLiDHdOW"
    "v8kYf76Eu3mU8PzADNorb7a7aJn/4FFkcNMg=="
)
