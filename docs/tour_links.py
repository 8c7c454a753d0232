"""Keep the code links of the Tour (docs/tour.md) pointing at the right lines.

A link is written [`QUALIFIED_NAME`](PATH#Lnn) or, before its first run, [`QUALIFIED_NAME`](PATH), with PATH
relative to the Markdown file (../hf_minimal/... from docs/, as a reader's browser resolves it) and QUALIFIED_NAME
a function, class, method or class attribute of that file: `scaled_dot_product_attention`,
`MinimalTransformerLayer.sublayer`, `MinimalTransformerForConditionalGeneration._tied_weights_keys`. The line is
found with `ast`, so it is the `def`, `class` or assignment line itself.

    python docs/tour_links.py            # rewrite every #Lnn in docs/tour.md to the current line
    python docs/tour_links.py --check    # exit 1, listing each stale or broken link, without writing
"""

import argparse
import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILES = ("docs/tour.md",)
LINK = re.compile(r"\[`(?P<name>[A-Za-z_][\w.]*)`\]\((?P<path>[\w./-]+\.py)(?:#L(?P<line>\d+))?\)")


def definition_lines(source: str) -> dict[str, int]:
    """Qualified name -> line of every function, class, method and class-level assignment in `source`."""
    lines: dict[str, int] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                lines.setdefault(prefix + node.name, node.lineno)
                if isinstance(node, ast.ClassDef):
                    visit(node.body, prefix + node.name + ".")
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                lines.setdefault(prefix + node.target.id, node.lineno)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        lines.setdefault(prefix + target.id, node.lineno)

    visit(ast.parse(source).body, "")
    return lines


def resolve(text: str, root: Path = ROOT / "docs") -> tuple[str, list[str]]:
    """`text` with every link's #Lnn set to the current line, and a description of each link that was stale or
    could not be resolved (missing file or name). Paths are relative to `root`, the Markdown file's folder."""
    problems: list[str] = []
    cache: dict[str, dict[str, int]] = {}

    def fix(match: re.Match) -> str:
        name, path, old = match["name"], match["path"], match["line"]
        if path not in cache:
            file = root / path
            cache[path] = definition_lines(file.read_text(encoding="utf-8")) if file.is_file() else {}
        line = cache[path].get(name)
        if line is None:
            problems.append(f"{name} is not defined in {path}")
            return match[0]
        if old is None or int(old) != line:
            problems.append(f"{name} in {path}: #L{old or '?'} should be #L{line}")
        return f"[`{name}`]({path}#L{line})"

    return LINK.sub(fix, text), problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="*", help=f"Markdown files (default: {', '.join(DEFAULT_FILES)} if present)")
    parser.add_argument("--check", action="store_true", help="only report stale links; exit 1 if there are any")
    args = parser.parse_args(argv)
    files = [Path(f) for f in args.files] or [ROOT / f for f in DEFAULT_FILES if (ROOT / f).is_file()]
    failed = False
    for file in files:
        text = file.read_text(encoding="utf-8")
        new_text, problems = resolve(text, file.resolve().parent)
        for problem in problems:
            print(f"{file}: {problem}")
        unresolved = [p for p in problems if "is not defined" in p]
        failed = failed or bool(unresolved) or (args.check and bool(problems))
        if not args.check and new_text != text:
            file.write_text(new_text, encoding="utf-8")
            print(f"{file}: updated")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
