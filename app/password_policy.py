"""The password policy: long enough, not built on the e-mail, and not easy to guess."""

from zxcvbn_rs_py import zxcvbn

from app.settings import Settings

# The estimate is scored on the first this many characters (zxcvbn's cost grows with
# length, and a body may hold 64 KiB); the password itself is never truncated.
STRENGTH_ESTIMATE_CHARS = 256
# A shorter local part ("jo@...") would forbid too many innocent passwords.
MIN_LOCAL_PART_CHECKED = 3
SCORE_NAMES = ("very weak", "weak", "fair", "strong", "very strong")


def password_problem(password: str, email: str, settings: Settings) -> str | None:
    """Why `password` is refused for the account `email`, or None when it is acceptable."""
    if len(password) < settings.password_min_length:
        return f"Password should be at least {settings.password_min_length} characters"
    try:
        password.encode("utf-8")
    except UnicodeEncodeError:
        return "Password contains characters that cannot be encoded"
    local_part = email.rpartition("@")[0].lower()
    if len(local_part) >= MIN_LOCAL_PART_CHECKED and local_part in password.lower():
        return "Password should not contain the e-mail address"
    estimate = zxcvbn(password[:STRENGTH_ESTIMATE_CHARS], user_inputs=[email, local_part])
    score = int(estimate.score)
    if score >= settings.password_min_strength:
        return None
    reason = f"Password is too easy to guess ({SCORE_NAMES[score]})"
    if estimate.feedback is not None:
        hints = [estimate.feedback.warning, *estimate.feedback.suggestions]
        reason += ": " + " ".join(str(hint).rstrip(".") + "." for hint in hints if hint)
    return reason
