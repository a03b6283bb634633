"""The project's design document is docs/design.md: code and tests cite its sections by name
(``docs/design.md, "Reissue rules"``), every cited section exists, and nothing cites a design
document outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DESIGN_DOCUMENT = ROOT / "docs" / "design.md"
CITATION = re.compile(r'design\.md,\s+"([^"\n]{1,80})"')
CITED_FILES = [*sorted((ROOT / "soap_service").rglob("*.py")), *sorted((ROOT / "tests").rglob("*.py")),
               *sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]


def _sections() -> set[str]:
    return {line.lstrip("#").strip() for line in DESIGN_DOCUMENT.read_text().splitlines() if line.startswith("## ")}


def _citations() -> list[tuple[Path, str]]:
    return [(path, match.group(1)) for path in CITED_FILES for match in CITATION.finditer(path.read_text())]


def test_every_cited_section_exists():
    sections = _sections()
    assert {"Layers", "The path of one Reissue", "Reissue rules", "Certificate profiles",
            "Concurrency and failures", "Error model"} <= sections
    missing = [(str(path.relative_to(ROOT)), section) for path, section in _citations() if section not in sections]
    assert not missing


def test_the_code_cites_the_design_document():
    cited_from = {path.relative_to(ROOT).parts[0] for path, _ in _citations()}
    assert {"soap_service", "tests"} <= cited_from


def test_every_citation_names_a_section():
    """In the code and the tests, ``design.md`` is always followed by a quoted section name:
    ``section 4`` or a bare word is a citation a reader cannot follow."""
    mention = re.compile(r"design\.md")
    loose = [(str(path.relative_to(ROOT)), text[match.start():match.start() + 40])
             for path in CITED_FILES if path.suffix == ".py" and path.name != Path(__file__).name
             for text in [path.read_text()] for match in mention.finditer(text)
             if not CITATION.match(text, match.start())]
    assert not loose


def test_no_reference_to_a_design_document_outside_the_repository():
    word = re.compile(r"\b" + "design".upper() + r"\b")  # spelt so that this file does not cite it
    found = [str(path.relative_to(ROOT)) for path in CITED_FILES
             if path.suffix == ".py" and word.search(path.read_text())]
    assert not found


def test_the_readme_links_the_design_document():
    assert "(docs/design.md)" in (ROOT / "README.md").read_text()
