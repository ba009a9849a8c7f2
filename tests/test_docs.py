"""The docs tell the truth about the tree: DEVELOPING.md names every module and only existing
files, and no docstring points outside the repository (to ``spec/``) or to a defect list it lacks."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEVELOPING = REPO / "docs" / "DEVELOPING.md"


def modules() -> list[Path]:
    package = REPO / "reactcli"
    return sorted(p.relative_to(package) for p in package.rglob("*.py") if p.name != "__init__.py")


def test_module_map_names_every_module() -> None:
    text = DEVELOPING.read_text()
    named = set(re.findall(r"`(?:reactcli/)?([\w/]+\.py)", text))
    missing = [str(m) for m in modules() if str(m) not in named and (len(m.parts) == 1 or m.name not in named)]
    assert missing == [], f"docs/DEVELOPING.md does not mention {missing}"


def test_module_map_names_only_existing_files() -> None:
    text = DEVELOPING.read_text()
    existing = {str(m) for m in modules()} | {m.name for m in modules()}
    existing |= {str(p.relative_to(REPO)) for p in REPO.rglob("*.py") if ".venv" not in p.parts}
    stale = sorted({name for name in re.findall(r"`(?:reactcli/)?([\w/]+\.py)", text) if name not in existing})
    assert stale == [], f"docs/DEVELOPING.md names files that do not exist: {stale}"


def test_docstring_references_stay_inside_the_repository() -> None:
    defects = re.findall(r"^(\d+)\. ", (REPO / "docs" / "model.md").read_text(), flags=re.M)
    for path in (REPO / "reactcli").rglob("*.py"):
        text = path.read_text()
        assert "spec/" not in text, f"{path}: cites spec/, which is not in the repository"
        for match in re.finditer(r"defect (\d+)", text):
            window = text[match.start() : match.start() + 80]
            assert "docs/model.md" in window, f"{path}: '{match.group(0)}' does not point to docs/model.md"
            assert match.group(1) in defects, f"{path}: docs/model.md has no defect {match.group(1)}"
    for name in ("dataset.md", "metrics.md", "model.md"):
        assert (REPO / "docs" / name).is_file()
