"""Oauth account (written by `make migration name=oauth_account`).

Aerich migrations are raw SQL for one dialect; this one carries the SQL for each
database we support and picks it by the connection's dialect.
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS "oauth_account" (
"id" CHAR(36) NOT NULL PRIMARY KEY,
"oauth_name" VARCHAR(32) NOT NULL,
"account_id" VARCHAR(255) NOT NULL,
"account_email" VARCHAR(320) NOT NULL,
"created_at" TIMESTAMP NOT NULL,
"last_used_at" TIMESTAMP,
"user_id" CHAR(36) NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
CONSTRAINT "uid_oauth_accou_oauth_n_7638ab" UNIQUE ("oauth_name", "account_id")
) /* A provider identity linked to a user: `(oauth_name, account_id)` signs in as `user`. */;
CREATE INDEX IF NOT EXISTS "idx_oauth_accou_user_id_456915" ON "oauth_account" ("user_id");""",
    "postgres": """
CREATE TABLE IF NOT EXISTS "oauth_account" (
"id" UUID NOT NULL PRIMARY KEY,
"oauth_name" VARCHAR(32) NOT NULL,
"account_id" VARCHAR(255) NOT NULL,
"account_email" VARCHAR(320) NOT NULL,
"created_at" TIMESTAMPTZ NOT NULL,
"last_used_at" TIMESTAMPTZ,
"user_id" UUID NOT NULL REFERENCES "user" ("id") ON DELETE CASCADE,
CONSTRAINT "uid_oauth_accou_oauth_n_7638ab" UNIQUE ("oauth_name", "account_id")
);
CREATE INDEX IF NOT EXISTS "idx_oauth_accou_user_id_456915" ON "oauth_account" ("user_id");
COMMENT ON TABLE "oauth_account" IS 'A provider identity linked to a user: `(oauth_name, account_id)` signs in as `user`.';""",
    "mysql": """
CREATE TABLE IF NOT EXISTS `oauth_account` (
`id` CHAR(36) NOT NULL PRIMARY KEY,
`oauth_name` VARCHAR(32) NOT NULL,
`account_id` VARCHAR(255) NOT NULL,
`account_email` VARCHAR(320) NOT NULL,
`created_at` DATETIME(6) NOT NULL,
`last_used_at` DATETIME(6),
`user_id` CHAR(36) NOT NULL,
UNIQUE KEY `uid_oauth_accou_oauth_n_7638ab` (`oauth_name`, `account_id`),
CONSTRAINT `fk_oauth_ac_user_26a17c7d` FOREIGN KEY (`user_id`) REFERENCES `user` (`id`) ON DELETE CASCADE,
KEY `idx_oauth_accou_user_id_456915` (`user_id`)
) CHARACTER SET utf8mb4 COMMENT='A provider identity linked to a user: `(oauth_name, account_id)` signs in as `user`.';""",
}

DOWNGRADE = {
    "sqlite": """
DROP TABLE IF EXISTS "oauth_account";""",
    "postgres": """
DROP TABLE IF EXISTS "oauth_account";""",
    "mysql": """
DROP TABLE IF EXISTS `oauth_account`;""",
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that applies this migration on `db`'s dialect."""
    return UPGRADE[db.capabilities.dialect]


async def downgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that reverts this migration on `db`'s dialect."""
    return DOWNGRADE[db.capabilities.dialect]


MODELS_STATE = (
    "eJztXG1z4jYQ/isavjSZ4TKEkEuadjoDuVyP3iV0LqTtXNIxii1AjZF8khwuvea/dyXb+A"
    "WbGA7ywvGFgLSrl2dleffRKl8rI+4QV+40fYeqk1vCVOUIfa0wPCLwJae2iirY8+I6XaDw"
    "tWvEsZazyETwWiqBbd1kH7uSQJFDpC2opyhnWqGJJLF9QdUdMlpHaDzkyKEO/MUKKQ5/qT"
    "1E2La5z1QVfhJWRX3BR/qrgCbHVA0Dae4rm4/Iju7a4Tb0TdlgZb1csSvWo04PDQQfy0BA"
    "0RHISo4oyAmHCBl0KBFmDgxC3BL4KpEaEuThAWVYA4FgbJILaLHnEIWpK3toyF0HRFGfjA"
    "E7G1rY6lPiOkhbRlahRhAHyomDsOMIIuV2FTHoTEAVzFYQZXDwGf3sE0vxAYFOBaBx+TcU"
    "U+aQL0Tqn5cV6V//Q2xlUUdrwCdIXFagcW2ksEQreTeWGUNqhQRKptxSd54pa9FBm6m3Rl"
    "bb4tqyueuPWCzv3akhZxMFGqyXAWFEYJgTlCnh6/XCfNcNV1e0hIIpxSLBXBI6Dulj39Wr"
    "TmsHA4jLKpZ11ula5yddy6pMrchII7F8wiKbM72aYajSADDQQ3j1Y72+t3dQr+29PtxvHB"
    "zsH9YOQdaMd7rq4D4YTIxW0JTBrP1r+6yrB8ThkQkeJ11wb3SwwoGWMVmMPthZ42VhNW2F"
    "N1CjF2S+HdKaGXs4oepO9CVrncgWs8wTFTyRfWB+Toe5d2G/M6Dvtk9PzrvN0991dyMpP7"
    "sGvmb3RNfUTeldpnTr9XbaVpNG0J/t7jukf6JPnbMTgy6XaiBMj7Fc91NFjwn7iluMjy14"
    "jGOIotIIRpCMjR4/mWmDHw+xyDd2rJExNCC2HNPG+/tj2HaEv1guYQM1hJ979Rm2/aP58f"
    "hd8+PWXj1jr7Owpm6q7lMAh1v8PAgnVB4PYti5bRu2/soLxRmWJRdW3hvk4qL9pnApT3Qy"
    "SPs+dXa0Zgm8w+fsuazoGcgGsAbbTXIjMRNN45l+kZdFNK21wTSNqe1ScOAs6s2zG6SUFt"
    "oPnhmW6Z2gsV9iJ2jsF+4EuiqNsg++sYUHYdxQFua01vrhXN8vAzRIFSJt6tJQCwIzlfmb"
    "RDHUaa31g3q3flgCapAqhNrUpaEOo7lpnH8775zl45xQyfrk1FboP+RSORUrLc2f+LnvM+"
    "MqomufuooyuaO7/WVVDsYMyDVEKX88QnrrtPlX1gjHHzqt7F6uG2iBQXTk2r9JRE+64Brb"
    "N2MsHGuqhtd5kex01ag+ypZgBhuSE85Yzy+kUDpNXw2bAcFQyaFYUvXVWSQLh+BgaOGEaA"
    "maxRP8ljpEIPhgSjMhLmU3xNHkB0Z6Iz1Cva2gaT2yakSGwBO/3UOSDphElGnyoqele3ks"
    "y/I70SRLV5MlYcs/SK0CLq8hVATpg7GH0PwNAU0sCGJcoRviqSNNg0B7r6A5RohjOJcR4s"
    "wm1SumlUFyCCNHmt9BNnbdkJaJ5uDCwyWKOJTLSjwLY4LJPAKqJMGvzMWcFHtp3+ydLUCf"
    "JPYD05P+aDzFZvCgv1bMkKTtVDqcS2ltguZSwdzkEZgD6LTWGgK9Eh8uQo2MwFlYBO6J4h"
    "oivlevlVrbtRmLu5ZF/GURrY+L/voyrS6GkAc8kUXsntVdguWfWQT1QgwdYTLT0oZKmM8j"
    "S6gs0y172mOTxZ2wqTgrDe40sm+5IOChvyd3Bt82jAODe56DZxgiXYTNvEhE49K4f4HHk7"
    "gguZxg6jBhooKXefP8uPnmpHL/NHHrOQRbwYynQtaoqjo7JQAcaZmQLBGsunxA2ZEJx3pS"
    "H7HzPqJqEvpF4R4EcVokXA46SgnlUnFhXqC63A50kHrGUbAzTE7u4b1vomDsHpnT+oQGor"
    "px9O60eaxb3KJONRKwjH9GxPYV85kOQ/UAgvN8k1igfxpsEXY5IwhWiYRQFunvlJU88t+E"
    "pE8akm58ye/RlzQbYWSWeYyeUlxDm78QG5dyI43TH27li0cN2QY2Rn/WRidfPArNLWDttO"
    "b6JWGtk5UzDtq0qQtTHnM0H85/XNYzXFvVmzrIf6zvNg4ah3uvG5O0x0nJrGzHKLMxCe8t"
    "uMaLbJlpzQ3N8rwfosBW4ObJ+VIYpzXXLwlh+Ycy86UtbfKVNvlKz+6sa8PMbpjZDTObw8"
    "wa0HNo2cgYxZxsZPUyXKyWjdJ0fjLkJ3mlD481hykVLBSdSSNG2KX/Eqeqs3dcPgYVG8vc"
    "m1jf3F6ZG01pnmzu+0sbynPZlOfciQpLTlB42qtiq09PGGJDF3lYyjEXc2Xg5KiuYVLIbq"
    "3eKJPgC2LFGb6mMuNgS0tfrrrNYXVbnLsEs4KNJKmXwfsaFFcFeLTuH3fnaHU6H1Ihaqud"
    "uep4dnHaOgH8DfggRINX7DRPAMBJ3yMi33N5CPOU6iPCPil5ybjfEkGhl7wLvw/AntTcoD"
    "4H6pujwuL9fX2PCn3PWdDqac2N1Z+L1XPIUTP6OS6nZFPawxgq53ZRK9R/+/4jcXHBze+C"
    "aycvbDkUhfDpa7FB9tE3IpXIdloXkFbJTjThlW8PK3n/TCaoqc7MGotlHuIoimFYciLU9/"
    "IvTb7xSK+YBAAvMHqCyganCZU1DEpXczfEm+vMJxRfQ3R3a2WIFpCaEfBP3wPhTOWe+hRf"
    "6U2oPP6V3qc5kFiPy7v3/wNW3NWb"
)
