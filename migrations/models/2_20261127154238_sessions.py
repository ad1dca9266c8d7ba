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
    "eJztW21zGjcQ/isaPjkzxIMxjl230xlwnIYmhk6M206SzlmcBKg+JCLpTNzU/70r3R33js"
    "HBNqZ8MXerXb08K+2tHsnfKmNBqKd2mz5h+vSacl05Rt8qHI8pPBSUVlEFTyZxmRFo3Pes"
    "OjZ6Dp0p9pWW2DVVDrCnKIgIVa5kE80ENwZNpKjrS6ZvkLU6RtORQIQR+MUaaQG/zB0h7L"
    "rC57oKr5RX0UCKsXmUUOWU6VGgLXztijHdNU0T4ULbjA8frJXP/DO/ZOQSDaWYqkBBszHo"
    "KoEY6ElCpQoaVAhzAp2Q1xQeFdIjiiZ4yDg2QCDomxISarwkVGPmqUs0Eh4BVTSgU8DOhR"
    "p2Box6BBnPqCqUSEpATgnChEiq1Isq4tCYhCIYraTa4uBz9sWnjhZDCo1KQOPTXyBmnNCv"
    "VJnXTxXl9/+mrnYYMRbwFzQ+VaBy46RQYowmV47tQ2qGBEZW7uibiZW12LDN9Rura3zRd1"
    "zh+WMe609u9EjwmQEL5suQcioxjAlkWvpmvnDf88LZFU2hYEixSjCWhA2hA+x7ZtYZ66AD"
    "saziOJ1uzzk/7TlOJTcjI4vE9AlFruBmNkNXlQVgaLrw8od6fX//sF7bf3V00Dg8PDiqHY"
    "Gu7W++6PA26EyMVlCVxaz9S7vTMx0SsGSC5WQEt9YGaxxYWZfF6IOfDV4O1nkvvIYSMyGL"
    "/ZC2zPiDhKa70UPWO5Ev5rknEjyRf2B8pMu9m7DdOdD32men573m2W+mubFSXzwLX7N3ak"
    "rqVnqTke68epH21awS9Ee79xaZV/Sx2zm16Aqlh9K2GOv1PlZMn7CvhcPF1IFlHEMUSSMY"
    "QTN2erwy0w4/GWFZ7OzYIuNoQGw1ro3j+2P4doy/Oh7lQz2C1/36HN/+3vxw8rb5YWe/nv"
    "FXJyyp26LbFMBhiF8G4YTJ40EMkdt1IfRXninOMC2FdIq+IBcX7delU3lmk0Ha9xnZNZYL"
    "4B2us3WZ0XOQDWANwk0ykNiBpvFMf8gXRTRttcU0janrMUjgHDZZJhqkjO4VD9YMy3QkaB"
    "wsEAkaB6WRwBSlUfYhN3bwMNw3LApz2mrzcK4fLAI0aJUibcvSUEsKI1XFQaIc6rTV5kG9"
    "Vz9aAGrQKoXalqWhDndzeZx/Pe92inFOmGRzcuZq9C/ymMrtlVaWT/w08LlNFVHfZ55mXO"
    "2aZn9+qARjDuQGolQ+HiG9c9b8M+uEk/fdVjaWmwpa4BCzcx1cJXZPRtDH7tUUS+LkSkRd"
    "lOnmi8b1cVaCOQQkEo7YjC+kUM4hTwvQybErUVF1PrWiR45KaC7ArXhiyPixZRsulaEqxA"
    "AxQ0bYrBFpcUV5QE0YlXBGGe+HepIOAMxRoFhEq6y2AcOodAQKFsOMAYGNKoEIz7B3bFmP"
    "hAVipnL09qx5YmrcYaQaKTiWyaHyxWfuw4yXtgMBL2IJGvNqsUXYE5wij0J3uEDmmfEFqZ"
    "OlSJHyBOy7E697MCOJpW5bMn8aT7HO70zFNoX8eNyP2wazHyYQRm5Zxukpww30+TPxcYTJ"
    "XCd7GHLNMJTfa4UXVrB1+lo7nX6dMKjuHt5OW24emb1JXs4kaHlXlx4dFVjefY60qjVce6"
    "gvdXCOVN9rHDaO9l81ZsdHM8m8U6PohCgJ7zWkxvcJmWnLFSyiNdvwb9YiCnwFaZ5a7igo"
    "b7l5ZM7qTyqWo3+3vO+W91073teCthwxkTBZJTuxtrnUHVxEjklMg5tH9o2QlA35O3pj8W"
    "1DPzB3i/afIRN4EVbzLBGNpXH7Ek9n9FhyOsHQYcBUBwu9eX7SfH1auX0aZtaCXkDLRs4o"
    "52Qjry/CxRrd6ILZj5b8pC/HmHmGw1QaJgpBXMgx9tg/lFQR48gTUzBxsSq80fbd9W3pzT"
    "UIKdU59CY17lzmszgzWM0NlKe9XpdJ6GoLZXS1OSldLftBHGFLDU2wUlMhlzoNLTDdwItV"
    "e7V6Y5FDUVArPxW1hZlkWjnmQtp1AYPbEsKjmJcEkqRdBu8+GD4U4NG8f9zI0ep236e2o6"
    "125npo5+KsdQr4W/BBiQWf0zwnAMApf0JlcZZyF+Yp00eEfSZ5zrhfU8mglaJL0nfAnrTc"
    "or4E6ttjwfL4vrnHgv6E3NPracut19fF6wVEqO39Ehd6Eldjg5szBXexWqHlm3cfqIdL7s"
    "nnb+o8szlQtke/fciddRM+Ye6oUvQPZUFJde6Np1jnrv11OQwr3uX+X/6t6TuPo8o3tZDV"
    "RCto0c1WwmQDN1kPwvWaRbUEwqH6BqK7V1uEOACtORvYHHEALerCE4vya70Jk8e/1vs0ZP"
    "pmXOC9/Q9po6JE"
)
