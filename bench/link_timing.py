"""Whether forgot-password tells a known address from an unknown one by the next request's time.

Sends `POST /auth/forgot-password` for a known or an unknown address, and at once, on the
same connection, the same request for an unknown address, timing the second one. Run by
`make bench`, or alone against a running service: `python -m bench.link_timing URL EMAIL`.
"""

import statistics
import sys
import time

import httpx

SAMPLES = 1000


def next_request_ms(url: str, known_email: str, samples: int = SAMPLES) -> tuple[float, float]:
    """Median milliseconds of the request right after one for the known / an unknown address."""
    after: dict[bool, list[float]] = {True: [], False: []}
    with httpx.Client(base_url=url, timeout=10) as http:
        for i in range(2 * samples):
            known = i % 2 == 0
            first = known_email if known else f"nobody-{i}@example.com"
            http.post("/auth/forgot-password", json={"email": first}).raise_for_status()
            started = time.perf_counter()
            http.post("/auth/forgot-password", json={"email": f"nobody-else-{i}@example.com"})
            after[known].append((time.perf_counter() - started) * 1000)
    return statistics.median(after[True]), statistics.median(after[False])


if __name__ == "__main__":
    known_ms, unknown_ms = next_request_ms(sys.argv[1], sys.argv[2])
    sys.stdout.write(
        f"next request after a known address: {known_ms:.2f} ms, after an unknown one: "
        f"{unknown_ms:.2f} ms, ratio {known_ms / unknown_ms:.2f}\n"
    )
