"""Create the `audit_event` table: the audit trail of security events (app/audit.py).

Its indexes serve the filters of `GET /audit-events` with the `id` cursor (subject or
action, newest first) and the time range and retention purge (`created_at`).
"""

from tortoise import BaseDBAsyncClient

RUN_IN_TRANSACTION = True

UPGRADE = {
    "sqlite": """
CREATE TABLE IF NOT EXISTS "audit_event" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "created_at" TIMESTAMP NOT NULL,
    "action" VARCHAR(32) NOT NULL,
    "outcome" VARCHAR(32) NOT NULL,
    "actor_id" CHAR(36),
    "subject_id" CHAR(36),
    "client_ip" VARCHAR(45),
    "user_agent" VARCHAR(255),
    "request_id" VARCHAR(128),
    "details" JSON NOT NULL
) /* A security event: who did what to which account, when, from where, with what outcome. */;
CREATE INDEX IF NOT EXISTS "idx_audit_event_created_a87696" ON "audit_event" ("created_at");
CREATE INDEX IF NOT EXISTS "idx_audit_event_subject_51ae36" ON "audit_event" ("subject_id", "id");
CREATE INDEX IF NOT EXISTS "idx_audit_event_action_ed6e8c" ON "audit_event" ("action", "id");""",
    "postgres": """
CREATE TABLE IF NOT EXISTS "audit_event" (
    "id" BIGSERIAL NOT NULL PRIMARY KEY,
    "created_at" TIMESTAMPTZ NOT NULL,
    "action" VARCHAR(32) NOT NULL,
    "outcome" VARCHAR(32) NOT NULL,
    "actor_id" UUID,
    "subject_id" UUID,
    "client_ip" VARCHAR(45),
    "user_agent" VARCHAR(255),
    "request_id" VARCHAR(128),
    "details" JSONB NOT NULL
);
CREATE INDEX IF NOT EXISTS "idx_audit_event_created_a87696" ON "audit_event" ("created_at");
CREATE INDEX IF NOT EXISTS "idx_audit_event_subject_51ae36" ON "audit_event" ("subject_id", "id");
CREATE INDEX IF NOT EXISTS "idx_audit_event_action_ed6e8c" ON "audit_event" ("action", "id");
COMMENT ON TABLE "audit_event" IS 'A security event: who did what to which account, when, from where, with what outcome.';""",
    "mysql": """
CREATE TABLE IF NOT EXISTS `audit_event` (
    `id` BIGINT NOT NULL PRIMARY KEY AUTO_INCREMENT,
    `created_at` DATETIME(6) NOT NULL,
    `action` VARCHAR(32) NOT NULL,
    `outcome` VARCHAR(32) NOT NULL,
    `actor_id` CHAR(36),
    `subject_id` CHAR(36),
    `client_ip` VARCHAR(45),
    `user_agent` VARCHAR(255),
    `request_id` VARCHAR(128),
    `details` JSON NOT NULL,
    KEY `idx_audit_event_created_a87696` (`created_at`),
    KEY `idx_audit_event_subject_51ae36` (`subject_id`, `id`),
    KEY `idx_audit_event_action_ed6e8c` (`action`, `id`)
) CHARACTER SET utf8mb4 COMMENT='A security event: who did what to which account, when, from where, with what outcome.';""",
}

DOWNGRADE = {
    "sqlite": 'DROP TABLE IF EXISTS "audit_event";',
    "postgres": 'DROP TABLE IF EXISTS "audit_event";',
    "mysql": "DROP TABLE IF EXISTS `audit_event`;",
}


async def upgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that applies this migration on `db`'s dialect."""
    return UPGRADE[db.capabilities.dialect]


async def downgrade(db: BaseDBAsyncClient) -> str:
    """The SQL that reverts this migration on `db`'s dialect."""
    return DOWNGRADE[db.capabilities.dialect]


MODELS_STATE = (
    "eJztWW1zGjcQ/isaPjkzxIMP/JK00xlwaEMnhk6M206czlmcBKg+JCLpTNzU/70r3R33wh"
    "0Gx8Y29Re4291HL89KK+3et8pEEOqr3WZAmG5fUa4rb9G3CscTCg8F2iqq4Ok00RmBxgPf"
    "mmNj59K54UBpiT3T5BD7ioKIUOVJNtVMcANoIkW9QDJ9jSzqLZqNBSKMwD/WSAv4Z94YYc"
    "8TAddVeKW8ioZSTMyjhCZnTI9DaxFoT0zorumaCA/6Znz0YL185p/5BSMXaCTFTIUGmk3A"
    "VgnEwE4SKlXYoUKYExiEvKLwqJAeUzTFI8axIQLB2JSQ0OIFoRozX12gsfAJmKIhnQF3Hr"
    "SwM2TUJ8h4RlVBIykBOSUIEyKpUq+qiENnElQwW0m15SHg7EtAXS1GFDqVwMb5XyBmnNCv"
    "VJnX84oKBn9TT7uMGAT8gsV5BRo3TookBjS9dO0YMiskBFm5q6+nVtZiow7XP1tb44uB6w"
    "k/mPDEfnqtx4LPASxcLyPKqcQwJ5BpGZj1wgPfj1ZXvITCKSUm4VxSGEKHOPDNqjPocACJ"
    "rOK63V7fPW33XbeysCJjRGr5RCJPcLOaYajKEjAyQ3j9xnHq9UOnVj842m8cHu4f1Y7A1o"
    "53UXV4Ew4mYStsynLW+aXT7ZsBCdgy4XYyghuLwRqHKOuyhH3ws+HLxXrRC+9AYxZksR+y"
    "yJw/SATdjR/y3ol9scw9seCR/APzIz3uX0f9LqG+3zlpn/abJ7+Z7iZKffEtfc1+22gcK7"
    "3OSXcOXmV9NW8E/dHpv0fmFX3qdduWXaH0SNoeE7v+p4oZEw60cLmYubCNE4piaUwjWCZO"
    "T3Zm1uHHYyyLnZ0gco4Gxu7HtUl834RvJ/ir61M+0mN4rTtLfPt78+Px++bHnbqT81c30j"
    "hWdZMhOArx6zCcgmyOYojcngehv/JMeYZlKaRbdIKcnXXelS7lOSbHdBAwsmuQK/Ad7bOn"
    "sqKXMBvSGoabdCCxE83ymT3IV2U0i3rhNMup5zO4wLlsuk40yIDuFA+eGJfZSNDYXyESNP"
    "ZLI4FRZVkO4G7s4lGUN6xKcxa1fTw7+6sQDValTFtdlmpJYaaqOEiUU51FbR/Ve87RClSD"
    "VSnVVpelOsrmFnn+9bTXLeY5BcnfyZmn0b/IZ2ohV7q3+8SPw4DbqyIaBMzXjKtd0+1PD3"
    "XBWEK5oShzH4+Z3jlp/pl3wvGHXisfy00DLXCIyVyHl6nsyQgG2LucYUncBY1wRJntomri"
    "TPISzCEgkWjGZn5RCeVM2ex7obRi5dVlRZUgtlihmmJs4zLGD4hphejrCSwoxBRScHGiBH"
    "EhJ9hn/1BSRYwjX8wA4mFVWDf57vZurz+sVVkov8V89+3lDuWF1H6xPZmfxmNsllvvM+UV"
    "BGrcuc5JMAfcT57zuEWcXIJTWynDqS1JcWr5M2CM1ZgSd4qVmgm51plbAN3C9H2v5jRWOX"
    "rBrPzstcos8Uy5puxxVZDGt4TwKeYlgSSNy/E9AOBDER6v+81Gjlav9yFzzLY6uSJk9+yk"
    "1Qb+LflgxHSmNpkhXAVTKuPzaj3OM9AN0j6XPGfer6hk0EtRKf4W2tPIF9bXYP15Vd43G9"
    "+3t/QeTMkdvZ5Fvnj9qXg95ijldjv6J5I2NiE+e+NK0Tf5UFNd+j0+sbkteSz38z2ncP+X"
    "L8POXuOwcVQ/aMw/CM8ly74D3/7NF45steb3vxRkCzOIBymTmk21BsOR+Rayu1dbJSsGqy"
    "XZ2UJWDD3qwmJ/eWU0Bdl8ZfRxPlNtRw305j9BsUsu"
)
