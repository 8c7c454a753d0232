"""The docs' links work where they are read: every relative link in the READMEs and docs/*.md names a file that
exists, relative to the page, and every #anchor into a Markdown page names one of its headings (GitHub's slugs)."""

import re
from pathlib import Path

import pytest
from conftest import ROOT

PAGES = [ROOT / "README.md", ROOT / "examples" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.S | re.M)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped (hyphens and underscores kept), spaces to -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(m[1]) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves_where_the_page_is_read(page):
    broken = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no {file.relative_to(ROOT) if ROOT in file.parents else file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: {file.name} has no heading with that anchor")
    assert broken == [], f"{page.relative_to(ROOT)}: {broken}"


def test_the_readme_is_a_front_page():
    """At most 200 lines; it starts with what this is, then the two commands."""
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200
    assert lines[0].startswith("# hf_minimal")
    commands = next(i for i, line in enumerate(lines) if line.startswith("make train"))
    assert commands < 15 and lines[commands + 2].startswith("make test")


def test_the_slug_rule_matches_githubs_for_our_headings():
    assert (
        slug("Fine-tuning a trained model (`--model_name_or_path`)")
        == "fine-tuning-a-trained-model---model_name_or_path"
    )
    assert slug("Serve it with CTranslate2") == "serve-it-with-ctranslate2"
