"""The documentation keeps up with the code: every setting, every route, every link."""

import re
from pathlib import Path

from app.app import create_app
from app.settings import OAuthProvider, Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

# [text](target), not an image; the target ends at the first space or ")".
MARKDOWN_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def documentation_files() -> list[Path]:
    """README.md and every file in docs/."""
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def prose(path: Path) -> str:
    """The text of a Markdown file without its fenced code blocks."""
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, spaces to '-', no punctuation."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file, with GitHub's -1, -2 for repeats."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for heading in HEADING.findall(prose(path)):
        anchor = github_anchor(heading)
        if anchor in seen:
            seen[anchor] += 1
            found.add(f"{anchor}-{seen[anchor]}")
        else:
            seen[anchor] = 0
            found.add(anchor)
    return found


def relative_links(path: Path) -> list[str]:
    """The targets of the links of a Markdown file that stay inside the repository."""
    text = INLINE_CODE.sub("", prose(path))
    return [
        target
        for target in MARKDOWN_LINK.findall(text)
        if not re.match(r"[a-z][a-z0-9+.-]*:", target)  # http:, https:, mailto: ...
    ]


def broken_links(path: Path) -> list[str]:
    """The relative links of a file whose file or #anchor does not exist."""
    broken = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no such heading)")
    return broken


def test_every_setting_is_in_the_settings_table() -> None:
    """Each field of Settings appears as its environment variable in docs/settings.md."""
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]*)`", (DOCS / "settings.md").read_text()))
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in documented]
    assert missing == []


def test_every_route_is_in_the_api_documentation(tmp_path: Path) -> None:
    """Each path of the OpenAPI appears in docs/api.md (a provider configured, so that the
    provider sign-in's routes exist too)."""
    google = OAuthProvider(name="google", preset="google", client_id="c", client_secret="s")
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        environment="development",
        secret="x" * 40,
        dev_secret_file=tmp_path / "dev-secret",
        database_url=f"sqlite://{tmp_path / 'unused.sqlite3'}",
        docs_enabled=True,
        oauth_providers=[google],
        oauth_frontend_url="https://app.example.com/",
    )
    paths = create_app(settings).openapi()["paths"]
    assert "/auth/{provider}/page/callback" in paths
    code_spans = re.findall(r"`([^`\n]*)`", (DOCS / "api.md").read_text())
    documented = {path for span in code_spans for path in re.findall(r"/[^\s`?,\[]*", span)}
    assert paths  # the OpenAPI was built
    missing = [path for path in paths if path not in documented]
    assert missing == []


def test_every_relative_link_and_anchor_resolves() -> None:
    """Links between README.md and docs/*.md point at existing files and headings."""
    broken = {
        str(path.relative_to(ROOT)): links
        for path in documentation_files()
        if (links := broken_links(path))
    }
    assert broken == {}


def test_the_link_check_reads_anchors_as_github_does() -> None:
    """The anchor rules the link check relies on."""
    assert github_anchor("Moving to PostgreSQL (or MariaDB/MySQL)") == (
        "moving-to-postgresql-or-mariadbmysql"
    )
    assert github_anchor("The command line: `python -m app`") == "the-command-line-python--m-app"
    assert github_anchor("ASVS 5.0 (V7 Session Management)") == "asvs-50-v7-session-management"
    assert github_anchor("E-mail and what the user sees") == "e-mail-and-what-the-user-sees"
