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
    "eJztXetz2joW/1c0fNlkhmZT8uqmOztD0nSb2yZ0Grq79zY7RrEFaGMkriQnZe/2f99zZB"
    "tssMEkkBDXXxKQztHjd/Q4D0n8URtIj/l6pxl43JzdMWFqx+SPmqADBh8ycuukRofDSR4m"
    "GHrjW3KKdA4bE95oo6iLRXaprxkkeUy7ig8NlwIZmkQzN1DcjIjlOib3fUk87sF/aoiR8J"
    "+7fUJdVwbC1OErE3XSVXKAHxUUec9NP6SWgXHlgO1g1Z50oW4uemur5Vpciw73OqSn5L0O"
    "CQwfAK2WhAOd8pjSYYWaUOFBI9Qdg4+amD4jQ9rjgiIQBNqmpYISOx4zlPu6Q/rS94CUdN"
    "k9YOdCCVtdznyPoGR0HXIU8yCdeYR6nmJab9eJgMoUZEFvFTMWh0Dw3wPmGNljUKkCNL79"
    "G5K58Nh3pvHrt5oObv7DXONwDzngL1B8q0HhKKQoBZmGt45tQ2qEhEw23TGjoU074b1zYd"
    "5bWpTFjeNKPxiICf1wZPpSjBl4OF56TDBFoU+QZlSA40UEvh+NrngIhV2akIR9SfB4rEsD"
    "H0cdcocNmKTVHOey1XauztqOU5sZkTFHYvhESa4UOJqhqdoC0MMmvPpLo7G3d9TY3Tt8c7"
    "B/dHTwZvcN0Nr2zmYd/QgbM0ErLMpidv7388s2NkjClAmnEyb8sDzU0JDLimyCPsgZ8XKo"
    "mZXCO8jBAZkthzTnlDy8iHUn/jAtnVgW88QTJzyTfKB/Xkv4o6jeOdC3zy/OrtrNi89Y3U"
    "Dr330LX7N9hjkNmzqaSt063E7LalwI+ed5+wPBr+S31uWZRVdq01O2xgld+7catokGRjpC"
    "3jswjScQxakxjEA5EfpkZqYFftqnKlvYE44pQQNiqxHtZH1/CtkO6HfHZ6Jn+vB1rzFHtv"
    "9ofjn90PyytdeYktdllNOwWT9SAEdL/DIIJ1ieDmJYuV0Xlv7aC8UZhqVUTtYO8vXr+bvc"
    "oTzmmUI6CLi3g5wF8I7m2aaM6DnIhrCGy01yIbEdTeOZ3siLIprmqjBNY+r6HBQ4hw+XWQ"
    "1STA9aDzYMy/RKsH9QYCXYP8hdCTArjXIAurFDe5HdUBTmNFf5cG4cFAEaqHKRtnlpqBWD"
    "nursRSIf6jRX+aB+3XhTAGqgyoXa5qWhjqy5WZx/uWpdZuOcYJnWyblryP+Iz/WMrbQyfe"
    "Kv3UBYVZHcBNw3XOgdrPZv61Iw5kCOEKX08RjprYvmv6aFcPqpdTK9lmMBJyAQtFy7twnr"
    "CRNuqHt7T5XnzOTIhsyjnc0aNAbTKVTAguRFPcb+RS6Uiy6F2eXjgGO1DBdLKr8+z8ky6F"
    "LHTZEudLO00d/AhAeyQOeARGeEYUMiu4QSX/a4OCbcaNLBso28ZaJDtqgmVx+arxoHh9t1"
    "wr4PuRpZNwY1hg2GRs/6WdZTDTpazoX1maAdfEN16GOhYkTupbplikhFYKwaKlxGXCpIlw"
    "uu+5bFVvuWaGiTz17BjoGFX4sbGcBE8MjNiGA7OSJFffL1Mxp4uqDrZCmnSL4C9mjF6wGe"
    "kcRUtzXhn/3nmOcLVbF854cdQU6f6v4yO1maazXG2vN6olIb2eF+gX3scD93G8OsKQ34Rf"
    "mYnlaHKK+Tya7ETD9A6mnO8nkWX4iQY5DmuxKjTXZWxlcD0DByvfhJvsW+/FXN5N11TePQ"
    "l7/XODoce+/xyzx//dVF89On2EE/AbQL2jvL2P3nwznhqsBMewUesu0k2Faw+myY2Vqm1c"
    "f6b5bTlRMsq1SYN3ZHWaAezxi3aXBnkX0vFeM98ZGNLL7nkdWUgWdkl36NinmRiE5SJ/Ur"
    "ej+22JLDCboOHWYmNB+aV6fNd2e1H8/mLPgC9vMdU6NTSKll+wtSJPVFLgMVUQMoXkG3QU"
    "uwpOEcl0CwhNCoR/zAGDcwqjw82AC2N1U9KRrcI2hizfoIVlRmZZxvwOpTn3cyAeS5tG2e"
    "YiphqHotDv1KS6q0pEpLqrSkn1FLakszzNGObNZCrcjEVIViKO1W+7M9jinVRFc5Hsc8Am"
    "G4j/GELlcDUF7smVBqVZs6BiNAkdG3qNQYwqjbD2MT2WGUtdRkj6yGh0M7hGvChKtGQzxD"
    "utW5eN90zi5Pv/z6uX3eunQ+nv3aqRPA7s+A0s5wtP2WdHyqjYMBHcuMwRXcHK5FHOOx4R"
    "agwXO0zBYbtmcAGp5HulKhyIkU/gjDLjQj8BLGda6FVQahjnFBEiM7oA4xqytGUR+MEsVh"
    "n8cqhZuzyD5rLGE9umA45JZRBCcclRZYTAusojT56Jc3SjPeAR4i9yneygrYZCtgvPnOin"
    "nedYsUW2mCC09w6+JRx4YW2RctwdoS/qzZutgEVWLFxsWjDIZWMzD9ZnjJK8tqSOXPNR0k"
    "zNW+QxOkBa66DZW84x4orvAH9HczIj4XqKUbOVbwO1th0diyenwhDeDZ7hANFqkGhRd9oh"
    "2k7mTddFt9JWg12JNdUcl/CvVyHV5qU6wLq1yf2GM1kKQYEdKQW9Dbj/EqGpT3CooTjHnW"
    "ZhhYXb5+LZAZKPtozuAdO+JS34+uxsV98GGwqzzV/ltt0gsrgnE/wutqlS94U/T/tJwKX6"
    "lJcZXQDljHhZrxFFgC6DRXCYFei8EVo8YGlPsPgXvMWELE9xq7hcb27pzBvVuZuJWJG1kw"
    "D4xxTfNWJu4mm7ib44PdiLBMFejacFv0yQJdV2BshT2eMVnjrPr8Z1lAkdYJygLGanRdB8"
    "2xjsZnTmTX3t2JTL/Y3AMjDkmi4YBWSkSXsguzDNXVVoBG6qUk4cowfj0F9n1rBVP/2L6Y"
    "kuCw4SVBPlw0T7HELe7VYwLH6mdMbV8LvCSkbAPCiIQNUNnIF2JLqC8FIzBKNJiyBD9H8b"
    "zqeNIGrIb1eceTKl3yJ9Ql7UIYi2UZoacYSyjzFyLj4pGSaCl/uNUwXUAl9I0WenVd7WeQ"
    "8pSCNivq3DhoBmdpoqGN1/tH+2/2DvfHQdBxyrzY5+x9K8XuQDV+yJKZ5qzcLJs9iUJZgZ"
    "qnl3tGbpazfA/BrD4os9zTUdWbUdWbUZsX66IZEa4FN8RpVmxrjZvs6/Vusiu6z1w5uCsH"
    "d+XgnnZwW9AzvNuxMPJd27HUi7i0kTY+7fTW+pDZK4zBoys4um4qpIJVjf+XeXU8BOXLe2"
    "Bxqc58VPzR5RV5nDvtblz6Ke7Kc7xqz/HS5z1WfM5jg96aWsspD7z+C+N9SLW+l2qpg0wZ"
    "rCU8W/N6t1HkjS8ky3+s0mZO2SnawXfC7zKc4ydS+oyKnIUkyTeF9w0wrgvweNw/7cpx0m"
    "p9Sln6J+dT58cvv16cnAH+Fnwg4uEWO6sOAnA6GDKVrbkswjzF+oSwj1NeMu53THGoJeu3"
    "KxbAnuSsUF8C9Srimr++lzfiGgy9B0o9zVlJfVOknuFjtq1f4sJUws5LvmWc8QrhScT//u"
    "MX5tOcHzHJeUH5hQ2HPBM+NZ1mHnJ6PGbTr0iVEbbUda1HQjZ9SayMeEVnBR+JVOJsYllA"
    "WsoJlp628Usj2XjGN0ILTdn4aZOXFaeYC+oSzsImaOBuv5bhLoxy6nPPwk5oFrkM83u24u"
    "OdP8uP5T3yoEK+Tw72r3ilKeorSrCU0Ee0nijgcKlIdkReQnRf7xbxewLVHP/b7O02KUxm"
    "LDv/x2ISLE//YzHPEx8sx8/C/Pg/BW2L5Q=="
)
