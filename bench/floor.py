"""The floor: a bare FastAPI route that only decodes the service's JWT, nothing else.

It answers what the service's `/authenticated-route` answers, for the same token,
without a database, a user manager or FastAPI Users, so the gap between the two is
what the service adds on top of HTTP and a JWT.
"""

import os
from typing import Annotated, Any

import jwt
from fastapi import FastAPI, Header, HTTPException

SECRET = os.environ.get("SECRET", "")
AUDIENCE = ["fastapi-users:auth"]

app = FastAPI()


@app.get("/authenticated-route")
async def authenticated_route(authorization: Annotated[str, Header()]) -> dict[str, Any]:
    """Decode the bearer token and greet its subject."""
    try:
        claims = jwt.decode(
            authorization.removeprefix("Bearer "), SECRET, audience=AUDIENCE, algorithms=["HS256"]
        )
    except jwt.PyJWTError:
        raise HTTPException(status_code=401) from None
    return {"message": f"Hello {claims['sub']}!"}
