"""Concurrent writers of one e-mail: the database's unique index decides, and nobody gets a 500."""

import asyncio
from collections import Counter

import httpx

from app.models import User
from tests.conftest import PASSWORD, CreateUser, Login

CONCURRENCY = 50


async def test_concurrent_registrations_of_one_email(client: httpx.AsyncClient) -> None:
    emails = [f"{'Race' if i % 2 else 'race'}@example.com" for i in range(CONCURRENCY)]

    responses = await asyncio.gather(
        *(client.post("/auth/register", json={"email": e, "password": PASSWORD}) for e in emails)
    )

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {201: 1, 400: CONCURRENCY - 1}
    refused = [r.json() for r in responses if r.status_code == 400]
    assert all(body == {"detail": "REGISTER_USER_ALREADY_EXISTS"} for body in refused)
    assert await User.filter(email="race@example.com").count() == 1
    assert await User.all().count() == 1


async def test_concurrent_changes_to_one_new_email(
    client: httpx.AsyncClient, create_user: CreateUser, login: Login
) -> None:
    count = 10
    users = [await create_user(f"user{i}@example.com") for i in range(count)]
    headers = [await login(u.email) for u in users]

    responses = await asyncio.gather(
        *(
            client.patch(
                "/users/me",
                json={"email": "wanted@example.com", "current_password": PASSWORD},
                headers=h,
            )
            for h in headers
        )
    )

    statuses = Counter(response.status_code for response in responses)
    assert statuses == {200: 1, 400: count - 1}
    refused = [r.json() for r in responses if r.status_code == 400]
    assert all(body == {"detail": "UPDATE_USER_EMAIL_ALREADY_EXISTS"} for body in refused)
    assert await User.filter(email="wanted@example.com").count() == 1
    assert await User.all().count() == count


async def test_concurrent_changes_to_a_taken_email(
    client: httpx.AsyncClient, create_user: CreateUser, login: Login
) -> None:
    await create_user("taken@example.com")
    others = [await create_user(f"other{i}@example.com") for i in range(5)]
    headers = [await login(u.email) for u in others]

    responses = await asyncio.gather(
        *(
            client.patch(
                "/users/me",
                json={"email": "TAKEN@example.com", "current_password": PASSWORD},
                headers=h,
            )
            for h in headers
        )
    )

    assert [r.status_code for r in responses] == [400] * len(others)
    assert all(r.json() == {"detail": "UPDATE_USER_EMAIL_ALREADY_EXISTS"} for r in responses)
    assert sorted(await User.all().values_list("email", flat=True)) == sorted(
        ["taken@example.com", *(u.email for u in others)]
    )
