"""Mfa (written by `make migration name=mfa`).

Aerich migrations are raw SQL for one dialect; this one carries the SQL for each
database we support and picks it by the connection's dialect.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS "mfa_challenge" (
"id" CHAR(36) NOT NULL PRIMARY KEY,
"token_hash" VARCHAR(64) NOT NULL UNIQUE,
"created_at" TIMESTAMP NOT NULL,
"expires_at" TIMESTAMP NOT NULL,
"attempts" SMALLINT NOT NULL,
"failed" SMALLINT NOT NULL,
"used_at" TIMESTAMP,
"user_id" CHAR(36) NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE
) /* The pending second step of a login: its `mfa_token` (as SHA-256), expiry and attempts. */;
CREATE INDEX IF NOT EXISTS "idx_mfa_challen_expires_d864dc" ON "mfa_challenge" ("expires_at");
CREATE INDEX IF NOT EXISTS "idx_mfa_challen_user_id_24bb4e" ON "mfa_challenge" ("user_id");
CREATE TABLE IF NOT EXISTS "mfa_recovery_code" (
"id" CHAR(36) NOT NULL PRIMARY KEY,
"code_hash" VARCHAR(255) NOT NULL,
"used_at" TIMESTAMP,
"user_id" CHAR(36) NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE
) /* One single-use recovery code of a user, stored as an argon2id hash. */;
CREATE INDEX IF NOT EXISTS "idx_mfa_recover_user_id_2074ba" ON "mfa_recovery_code" ("user_id");
CREATE TABLE IF NOT EXISTS "mfa_totp" (
"secret" VARCHAR(255) NOT NULL,
"created_at" TIMESTAMP NOT NULL,
"confirmed_at" TIMESTAMP,
"last_step" BIGINT NOT NULL,
"user_id" CHAR(36) NOT NULL PRIMARY KEY REFERENCES "user" ("id") ON DELETE CASCADE
) /* A user's TOTP factor: pending until confirmed with a code, then asked at every login. */;
ALTER TABLE "auth_session" ADD "aal" SMALLINT NOT NULL DEFAULT 1;""",
    "postgres": """
CREATE TABLE IF NOT EXISTS "mfa_challenge" (
"id" UUID NOT NULL PRIMARY KEY,
"token_hash" VARCHAR(64) NOT NULL UNIQUE,
"created_at" TIMESTAMPTZ NOT NULL,
"expires_at" TIMESTAMPTZ NOT NULL,
"attempts" SMALLINT NOT NULL,
"failed" SMALLINT NOT NULL,
"used_at" TIMESTAMPTZ,
"user_id" UUID NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS "idx_mfa_challen_expires_d864dc" ON "mfa_challenge" ("expires_at");
CREATE INDEX IF NOT EXISTS "idx_mfa_challen_user_id_24bb4e" ON "mfa_challenge" ("user_id");
COMMENT ON TABLE "mfa_challenge" IS 'The pending second step of a login: its `mfa_token` (as SHA-256), expiry and attempts.';
CREATE TABLE IF NOT EXISTS "mfa_recovery_code" (
"id" UUID NOT NULL PRIMARY KEY,
"code_hash" VARCHAR(255) NOT NULL,
"used_at" TIMESTAMPTZ,
"user_id" UUID NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS "idx_mfa_recover_user_id_2074ba" ON "mfa_recovery_code" ("user_id");
COMMENT ON TABLE "mfa_recovery_code" IS 'One single-use recovery code of a user, stored as an argon2id hash.';
CREATE TABLE IF NOT EXISTS "mfa_totp" (
"secret" VARCHAR(255) NOT NULL,
"created_at" TIMESTAMPTZ NOT NULL,
"confirmed_at" TIMESTAMPTZ,
"last_step" BIGINT NOT NULL,
"user_id" UUID NOT NULL PRIMARY KEY REFERENCES "user" ("id") ON DELETE CASCADE
);
COMMENT ON TABLE "mfa_totp" IS 'A user''s TOTP factor: pending until confirmed with a code, then asked at every login.';
ALTER TABLE "auth_session" ADD "aal" SMALLINT NOT NULL DEFAULT 1;""",
    "mysql": """
CREATE TABLE IF NOT EXISTS `mfa_challenge` (
`id` CHAR(36) NOT NULL PRIMARY KEY,
`token_hash` VARCHAR(64) NOT NULL UNIQUE,
`created_at` DATETIME(6) NOT NULL,
`expires_at` DATETIME(6) NOT NULL,
`attempts` SMALLINT NOT NULL,
`failed` SMALLINT NOT NULL,
`used_at` DATETIME(6),
`user_id` CHAR(36) NOT NULL,
CONSTRAINT `fk_mfa_chal_user_9300513a` FOREIGN KEY (`user_id`) REFERENCES `user` (`id`) ON DELETE CASCADE,
KEY `idx_mfa_challen_expires_d864dc` (`expires_at`),
KEY `idx_mfa_challen_user_id_24bb4e` (`user_id`)
) CHARACTER SET utf8mb4 COMMENT='The pending second step of a login: its `mfa_token` (as SHA-256), expiry and attempts.';
CREATE TABLE IF NOT EXISTS `mfa_recovery_code` (
`id` CHAR(36) NOT NULL PRIMARY KEY,
`code_hash` VARCHAR(255) NOT NULL,
`used_at` DATETIME(6),
`user_id` CHAR(36) NOT NULL,
CONSTRAINT `fk_mfa_reco_user_684752aa` FOREIGN KEY (`user_id`) REFERENCES `user` (`id`) ON DELETE CASCADE,
KEY `idx_mfa_recover_user_id_2074ba` (`user_id`)
) CHARACTER SET utf8mb4 COMMENT='One single-use recovery code of a user, stored as an argon2id hash.';
CREATE TABLE IF NOT EXISTS `mfa_totp` (
`secret` VARCHAR(255) NOT NULL,
`created_at` DATETIME(6) NOT NULL,
`confirmed_at` DATETIME(6),
`last_step` BIGINT NOT NULL,
`user_id` CHAR(36) NOT NULL PRIMARY KEY,
CONSTRAINT `fk_mfa_totp_user_4ddaa032` FOREIGN KEY (`user_id`) REFERENCES `user` (`id`) ON DELETE CASCADE
) CHARACTER SET utf8mb4 COMMENT='A user's TOTP factor: pending until confirmed with a code, then asked at every login.';
ALTER TABLE `auth_session` ADD `aal` SMALLINT NOT NULL DEFAULT 1;""",
}

DOWNGRADE = {
    "sqlite": """
ALTER TABLE "auth_session" DROP COLUMN "aal";
DROP TABLE IF EXISTS "mfa_totp";
DROP TABLE IF EXISTS "mfa_recovery_code";
DROP TABLE IF EXISTS "mfa_challenge";""",
    "postgres": """
ALTER TABLE "auth_session" DROP COLUMN "aal";
DROP TABLE IF EXISTS "mfa_challenge";
DROP TABLE IF EXISTS "mfa_totp";
DROP TABLE IF EXISTS "mfa_recovery_code";""",
    "mysql": """
ALTER TABLE `auth_session` DROP COLUMN `aal`;
DROP TABLE IF EXISTS `mfa_totp`;
DROP TABLE IF EXISTS `mfa_recovery_code`;
DROP TABLE IF EXISTS `mfa_challenge`;""",
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that applies this migration on `db`'s dialect."""
    return UPGRADE[db.capabilities.dialect]


async def downgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that reverts this migration on `db`'s dialect."""
    return DOWNGRADE[db.capabilities.dialect]


MODELS_STATE = (
    "eJztXW1z4roV/isavjQ7w6YJeW220xmSzXa5uwk7CWl776ZjFFuAGiNxJTksvc1/7zmyDT"
    "bYvCSQENZfCEjnSPJzZOm8Sfmj1JUe8/V2NfC4OX9gwpROyB8lQbsMvmTUlkmJ9nqjOiww"
    "9M635BTpHDYkvNNGURebbFFfMyjymHYV7xkuBTJUiWZuoLgZEMt1QvodSTzuwV9qiJHwl7"
    "sdQl1XBsKU4ScTZdJSsotfFTTZ56YTUsvAuLLLtrFrT7rQNxftlfVyK25Fk3tN0layr0MC"
    "w7tAqyXhQKc8pnTYoSZUeDAI9cDgqyamw0iPtrmgCASBsWmpoMWmxwzlvm6SjvQ9ICUt1g"
    "fsXGhhq8WZ7xGUjC5DjWIelDOPUM9TTOt3ZSKgMwVV8LSKGYtDIPjvAXOMbDPoVAEa3/8N"
    "xVx47AfT+PN7SQd3/2GucbiHHPAJFN9L0DgKKSpBpt69Y8eQmiEhky13zKBny055uybMJ0"
    "uLsrhzXOkHXTGi7w1MR4ohAw/nS5sJpig8E5QZFeB8EYHvR7MrnkLhI41IwmdJ8HisRQMf"
    "Zx1yhwMYlZUc57LecK7PG45TmpiRMUdi+kRFrhQ4m2Go2gLQxiG8/0ulsrd3VNnZOzw+2D"
    "86OjjeOQZaO97JqqPHcDAjtMKmLGa1v9cuGzggCa9M+DphwaPloYaGXFZkI/RBzoiXQ82k"
    "FD5CDU7IbDmkOcfk4UWs2/GXcenEspgmnrjgleQDz+fVhT+I+p0CfaN2cX7dqF58w+66Wv"
    "/uW/iqjXOsqdjSwVjp1uG7tKyGjZB/1hqfCf4kv9Uvzy26Upu2sj2O6Bq/lXBMNDDSEbLv"
    "wGs8gigujWEEypHQR29mWuBnHaqyhT3iGBM0ILYc0Y7W95eQbZf+cHwm2qYDP/cqU2T7j+"
    "rV2efq1dZeZUxel1FNxVY9pgCOlvhFEE6wvBzEsHK7Liz9pTeKM0xLqZysHeTmpvYxdyoP"
    "ecaQDgLubSPnHHhH79m6zOgpyIawhstNciGxD5rGM72Rz4tomqvANI2p63NQ4BzeW2Q1SD"
    "E9aT1YMyzTK8H+wRwrwf5B7kqAVWmUA9CNHdqO7IZ5YU5zbR7OlYN5gAaqXKRtXRpqxeBJ"
    "dfYikQ91mmvzoN6tHM8BNVDlQm3r0lBH1twkzr9c1y+zcU6wjOvk3DXkf8TnesJWWpo+8d"
    "dWIKyqSO4C7hsu9DZ2+7dVKRhTIEeIUvp4jPTWRfVf40I4+1o/HV/LsYFTEAharq37hPWE"
    "BXfUve9T5TkTNbIi82gnq7qV7ngJFbAgedET4/NFLpSLFoW3y8cJx0oZLpZUfXmak6Xboo"
    "6bIp3pZmmgv4EJD2SBzgGJzgjDekS2CCW+bHNxQrjRpIltG3nPRJNsUU2uP1ffVw4O35UJ"
    "+9HjamDdGNQY1u0ZPelnWU036GipCeszQTv4jurQx0LFgPSlumeKSEVgrhoqXEZcKkiLC6"
    "47lsV2+4FoGJPP3sOOgY3fijsZwIvgkbsBwXFyRIr65OYbGnh6TtfJQk6RfAXs2YrXEzwj"
    "iVfd9oQf+6/xns9UxfKdH3YGOR2qO4vsZGmu5Rhrr+uJSm1kh/tz7GOH+7nbGFaNacBvys"
    "f0sjrE5jqZ7ErM9BOknubcPM/iGxFyDNJ0V2K0yU7K+LoLGkauFz/JN9uXv6w3eWdVr3Ho"
    "y9+rHB0Ovff4Y5q//vqi+vVr7KAfAdoC7Z1l7P7T4RxxFWCmvQJP2XYSbEtYfdbMbN2k1c"
    "f6bxbTlRMsy1SY13ZHmaEeTxi3aXAnkf0kFeNt8YUNLL61yGrKwDOyS2+iZt4koqPSUf+K"
    "9ocWW3I6waPDAzMTmg/V67Pqx/PS46s5C67Afn5ganAGJaVsf0GKpDzLZaAiagDFm9NtUB"
    "csaTjHLRBsITTqET8wxg3MKg8TG8D2pqotRYV7BE2sSR/BktosjPM1WH3K0zITQJ4L2+Yp"
    "pg0MVa/EoV9oSYWWVGhJhZb0M2pJDWl6OdqRrZqpFZmYao5UVYThT5o06o1vNidTqpNhuC"
    "MQhvsYSmhx1QW9xaaDUqvVlDEOATqMvkd9xmBGKOg7Ni6Rlaq6gl5sqmqYFNokXBMmXDXo"
    "Ye7oVvPiU9U5vzy7+vVbo1a/dL6c/9osE8Dsz4DOdm/w7gNp+lQbBwM5lhmDKrgp3Io4tm"
    "PDLECD+bPMNhsOqAuanUdaUqGoiRT+AMMtNCPgEsZzboVVAqGPYUMSIzqgBoVPE0V7MDoU"
    "h3ueqwyuz+L6qjGE1eiA4ZRbRAEccRTa33zaXxGdyUd/c6Mzwy3gKXIf4y20/3XW/oeb76"
    "SYpx2zSLFtTFDhBU5bPCtdaJZdUResIeFjxVbFOqgSSzYqnmUoXDOtw6eYMBTiqqmGAryg"
    "HUcnKOcwFqJ0J9SNmxqPiYGijLlP1GbsE5uFEh4LQ5JIwujxi+gUa8Eq0gkJs+yE5XaAJs"
    "KlJOECMjx9BiqCx8DmoP6JPXGW4LBquiCfL6pn2OIW98oxgWNP0TH17lZgkpWyAwg1O6vo"
    "WwsCsSXUlwJsBwbDEZLg98gmKty7a67aF2rnz6h22oUwFssiQk8xbqDM34iM59c4o6X8SW"
    "94ZgOF0Nda6EW6388g5TEFbVLUufZkBufGWJWV3f2j/eO9w/2hMTksmWZDTuarKfYAqvFT"
    "lsw0Z+GRWe+XKJQVqHl6sWP4k5ybd5Bu+afEFzt6W5y5Lc7crl2QhlJ/EuMZGfYhy8ttsr"
    "ur3WSXlA++JsHatVVJi0yYNXJav1gmjAU9w7sdCyPftR1Lfd78l/iOtA/Wh8zedyn30RUc"
    "pesKqWBV4/9lXplwQXzZBxaX6sxL2Z7d3jyXm6XdjQtfZVZ4jpftOWYo4kU0jiHDxp3V3a"
    "vszKUs70zRlnfGdQ1Mn4b53qNa96Va6JKPDNYNTMPZ3anMc0YayfIv+7CVY3aKdvCetYcM"
    "5/iplD6jImchSfKN4X0HjKsCPJ73L7tynNbrX1OW/mltLA5/eXNxeg74W/CBiJtEeH4McB"
    "30mMrWXGZhnmJ9QdiHJW8Z9wemOPSSdffnDNiTnAXqC6BeRFzz1/fNjbgGPe+JUk9zFlJf"
    "F6ln+Jjt6BdIPEvYecm7oDJucTiN+D99uWI+zbkENucGqjc2HfJM+NTrNHEQ9vmYjZ/C3U"
    "TYoty3Z4KVyLXbFJAWcuqkp2F88igbzzhTdK4pGB91elt+96mgLuD8qoJG6XZKWf+2IKwp"
    "T83tHNHMcoHlP9mS0xV/lsvznxl4z/cxwXocrzTz+j4SLBvo81hNVKu3UGQ2It9AdHd35v"
    "HjAdUUf9KEHw96NJmx2fzLYxMsL3957OvEuzbjmtjH/wMrH1yv"
)
