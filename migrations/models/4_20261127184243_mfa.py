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
) /* The TOTP factor of a user: pending until confirmed with a code, then asked at each login. */;
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
COMMENT ON TABLE "mfa_totp" IS 'The TOTP factor of a user: pending until confirmed with a code, then asked at each login.';
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
) CHARACTER SET utf8mb4 COMMENT='The TOTP factor of a user: pending until confirmed with a code, then asked at each login.';
ALTER TABLE `auth_session` ADD `aal` SMALLINT NOT NULL DEFAULT 1;""",
}

DOWNGRADE = {
    "sqlite": """
ALTER TABLE "auth_session" DROP COLUMN "aal";
DROP TABLE IF EXISTS "mfa_recovery_code";
DROP TABLE IF EXISTS "mfa_totp";
DROP TABLE IF EXISTS "mfa_challenge";""",
    "postgres": """
ALTER TABLE "auth_session" DROP COLUMN "aal";
DROP TABLE IF EXISTS "mfa_recovery_code";
DROP TABLE IF EXISTS "mfa_totp";
DROP TABLE IF EXISTS "mfa_challenge";""",
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
    "eJztXW1z4jgS/isqPiVVTC5DXi9zdVUkk7nJzSRMJeTudidXRtgCdDESK8lhuN389+2Wbb"
    "DB5iWBhDD+QkDqluSn5Va/SMrvpa70mK93qoHHzfkDE6Z0Qn4vCdpl8CWjtkxKtNcb1WGB"
    "oU3fklOkc9iQsKmNoi422aK+ZlDkMe0q3jNcCmSoEs3cQHEzIJbrhPQ7knjcg7/UECPhL3"
    "c7hLquDIQpw08myqSlZBe/Kmiyz00npJaBcWWX7WDXnnShby7aK+vlTtyJBvcapK1kX4cE"
    "hneBVkvCgU55TOmwQ02o8GAQ6oHBV01Mh5EebXNBEQgCY9NSQYsNjxnKfd0gHel7QEparA"
    "/YudDCVosz3yMoGV2GGsU8KGceoZ6nmNbbZSKgMwVV8LSKGYtDIPhvAXOMbDPoVAEa3/8L"
    "xVx47AfT+PN7SQfN/zHXONxDDvgEiu8laByFFJUgU+/esWNIzZCQyZY7ZtCzZae8fSHMJ0"
    "uLsmg6rvSDrhjR9wamI8WQgYfzpc0EUxSeCcqMCnC+iMD3o9kVT6HwkUYk4bMkeDzWooGP"
    "sw65wwGMykqOc1WrOzfndccpTczImCMxfaIiVwqczTBUbQFo4xDe/bVS2ds7quzuHR4f7B"
    "8dHRzvHgOtHe9k1dFjOJgRWmFTFrOLf1xc1XFAEl6Z8HXCgkfLQw0NuazIRuiDnBEvh5pJ"
    "KXyEGpyQ2XJIc47Jw4tYd+Iv49KJZTFNPHHBK8kHns+rCX8Q9TsF+vrF5flNvXr5Dbvrav"
    "2bb+Gr1s+xpmJLB2OlW4fbaVkNGyH/vqh/JviT/Fq7OrfoSm3ayvY4oqv/WsIx0cBIR8i+"
    "A6/xCKK4NIYRKEdCH72ZaYGfdajKFvaIY0zQgNhyRDvS7y8h2y794fhMtE0Hfu5Vpsj2X9"
    "Xrs8/V6629ypi8rqKaiq16TAEcqfhFEE6wvBzEoLldF1R/6Y3iDNNSKidrBbm9vfiYO5WH"
    "PGNIBwH3dpBzDryj92xdZvQUZENYQ3WTVCT2QdN4phfyeRFNcxWYpjF1fQ4GnMN7i2iDFN"
    "OT9MGaYZnWBPsHc2iC/YNcTYBVaZQDsI0d2o78hnlhTnNtHs6Vg3mABqpcpG1dGmrF4El1"
    "tpLIhzrNtXlQv68czwE1UOVCbevSUEfe3CTO/7ypXWXjnGAZt8m5a8gfxOd6wldamj3xt1"
    "YgrKlImgH3DRd6B7v9+6oMjCmQI0QpezxGeuuy+p9xIZx9rZ2O63Js4BQEgp5r6z7hPWFB"
    "k7r3fao8Z6JGVmQe7WRVt9IdL6ECFJIXPTE+XxRCuWxReLt8nHCslBFiSdWXpwVZui3quC"
    "nSmWGWOsYbmPBAFhgckBiMMKxHZItQ4ss2FyeEG00a2LaR90w0yBbV5OZz9V3l4HC7TNiP"
    "HlcDG8agxrBuz+jJOMtqusFAy4WwMRP0g5tUhzEWKgakL9U9U0QqAnPVUOEy4lJBWlxw3b"
    "EsttsPRMOYfPYOVgxs/E40ZQAvgkeaA4Lj5IgU9cntN3Tw9Jyhk4WCIvkG2LMNrydERhKv"
    "uu0JP/Zf4z2faYrlBz/sDHI6VHcWWcnSXMtx1l43EpVayA7351jHDvdzlzGsGrOA31SM6W"
    "VtiM0NMllNzPQTpJ7m3LzI4hsRcgzS9FBitMhOyvimCxZGbhQ/yTc7lr+sN3l3Va9xGMvf"
    "qxwdDqP3+GNavP7msvr1axygHwHaAuudZaz+0+EccRVgpqMCT1l2EmxL0D5r5rZukvax8Z"
    "vFbOUEyzIN5rVdUWaYxxPObRrcSWQ/ScV4W3xhA4vvReQ1ZeAZ+aW3UTNvEtFR6ah/RftD"
    "jy05neDR4YGZCd2H6s1Z9eN56fHVggXX4D8/MDU4g5JSdrwgRVKeFTJQETWA4s0ZNqgJln"
    "Sc4xYIthA69YgfOOMGZpWHGxvA96aqLUWFewRdrMkYwZLaLJzzNdA+5Wk7E0CeC/vmKaYN"
    "TFWvJKBfWEmFlVRYSYWV9DNaSXVpejnWka2aaRWZmGquHEq9Vv9mt2NKNbJVToY5j0AY7m"
    "M+ocVVF4wXuyeUWtOmjMkIMGT0PRo1hjDqdsLcRHYaZSU92S2r4ebQBuGaMOGqQQ/3kG41"
    "Lj9VnfOrs+tfvtUvalfOl/NfGmUC2P0FUNrpDbY/kIZPtXEwoWOZMbmCi8OdiHM8Nt0CNL"
    "iPltlmw/F0wcLzSEsqFDmRwh9g2oVmJF7CvM6dsMYg9DFsSGJmB8whZm3FKOuDWaI47fNc"
    "o3B9lOyr5hJWYwuGU24RQ3DEUViB81mBRZYmH/3NzdIMV4CnyH2Mt/AC1tkLGC6+k2Kedt"
    "wixbYxyYUXOHXxrG1Ds/yLmmB1CR8r9i7WwZRYsnPxLIfhhmkdPsWEwxBXTXUY4AXtODpB"
    "Ocf5tmjbE9rGDY3HxcBQxj1Q1O7cJ3Y3Sng8DEkiCWPkL6JTrAVapBMSZh1tW24H6CJcSR"
    "IqkOEpNDARPAYuB/VP7MmzBIc10wX5fFk9wxa3uFeOCRx7mo6p7TuBm62UHUBo2VlD33oQ"
    "iC2hvhTgOzAYjpAEv0d+URHmXXPTvjA7f0az0yrCWCyLCD3FuIEyfyMynt/ijFT5k97wzA"
    "YKoa+10Ittfz+DlMcMtElR5/qTGZwb41VW3u8f7R/vHe4PnclhyTQfcnLfmmIPYBo/RWWm"
    "OYuIzHq/RKGswMzTix3Hn+TcvAN1yz8tvtgR3OLsbXH2du2SNJT6kxjP2GkfsrzcIvt+tY"
    "vskvaFr0mydm1N0mJHzBoFrV9sR4wFPSO6HQsjP7QdS32ekDbSxnelfbAxZPauS7mPoeBo"
    "266QCrQa/z/zyoQL4ss+sLhUZ17O9uz25rnkLB1uXPhKsyJyvOzIMUMRL2JxDBk27szuXm"
    "V3LmN5d4q1vDtua+A2apjvPap1X6qFLvvIYN3AbTjvdyvznJVGsvxLP2zlmJ+iHbxv7SEj"
    "OH4qpc+oyFEkSb4xvJvAuCrA43n/sprjtFb7mvL0Ty/G8vBXt5en54C/BR+IuEmk58cA10"
    "GPqWzLZRbmKdYXhH1Y8pZxf2CKQy9Zd4DOgD3JWaC+AOpFxjVfv29uxjXoeU+UepqzkPq6"
    "SD0jxmxHv8DGs4Sfl7wTKuM2h9OI/9OXa+bTnMtgc26iemPTIc+FT71OEwdin4/Z+GncTY"
    "Qt2vv2TLASe+02BaSFgjrpaRifQMrGM94pOtcUjI88va24+1RQFwh+VcGidDulrH9fENaU"
    "p+7tHNHMCoHlP9mStyv+LJfoPzPxnh9jAn0ca5p5Yx8Jlg2Meawmq9VbKDMbkW8guu9354"
    "njAdWUeNJEHA96NJm52fxLZBMsL3+J7OvkuzbjutjHPwF5uV7z"
)
