"""The repository is all a fresh clone has: nothing reads outside its tree.

The clients' contract is the project's own copy (`contract/`); no file names
a folder beside the repository or an absolute path of this machine, and no
`Path(__file__).parents[N]` climbs above the repository root.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Not the project's files: tools' caches, the virtualenv, build output.
SKIPPED_DIRS = {
    ".git", ".venv", ".cache", ".herald", "build", "dist", "node_modules",
    "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".hypothesis",
}  # fmt: skip
TEXT_SUFFIXES = {
    ".py", ".md", ".toml", ".cfg", ".ini", ".sh", ".graphql", ".json", ".yml", ".yaml",
    ".lua", ".template", ".txt", "",
}  # fmt: skip
OUTSIDE = re.compile(
    r"\.\./shared|/work/|/home/|parents?\s*/\s*[\"']shared[\"']|HERALD_CONTRACT_DIR"
)
PARENTS = re.compile(r"Path\(__file__\)\.resolve\(\)\.parents\[(\d+)\]")
THIS_FILE = Path(__file__).resolve()


def _project_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        relative = path.relative_to(REPO)
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") for part in relative.parts):
            continue
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path != THIS_FILE:
            files.append(path)
    return files


def test_the_contract_is_inside_the_repository() -> None:
    operations = {p.name for p in (REPO / "contract" / "operations").glob("*.graphql")}
    assert {"mobile.graphql", "portal.graphql", "website.graphql"} <= operations
    assert (REPO / "contract" / "CONTRACT.md").is_file()


def test_no_file_names_a_path_outside_the_tree() -> None:
    files = _project_files()
    assert len(files) > 50  # the walk found the project
    offenders = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_no_module_climbs_above_the_repository_root() -> None:
    offenders = []
    for path in _project_files():
        if path.suffix != ".py":
            continue
        depth = len(path.relative_to(REPO).parts) - 1  # folders between the file and the root
        for match in PARENTS.finditer(path.read_text()):
            if int(match.group(1)) > depth:
                offenders.append(f"{path.relative_to(REPO)}: parents[{match.group(1)}]")
    assert offenders == []


def test_herald_allowlist_with_no_arguments_lists_the_contract_operations(tmp_path: Path) -> None:
    # From another folder: the default is the repository's contract, not the cwd's.
    done = subprocess.run(
        [sys.executable, "-m", "cli.main", "allowlist"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "mutation PortalRecordPositions" in done.stdout
    assert "Traceback" not in done.stderr
