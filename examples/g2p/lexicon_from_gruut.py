#!/usr/bin/env python
"""Write the pronunciation lexicon of a gruut language package (PyPI, MIT licence) as a tab-separated file.

    pip download --no-deps gruut-lang-de -d downloads          # or: pip install gruut-lang-de
    python examples/g2p/lexicon_from_gruut.py downloads/gruut_lang_de-2.0.1.tar.gz data/de.tsv
    python examples/g2p/lexicon_from_gruut.py de data/de.tsv       # from the installed package
    python examples/g2p/train_g2p.py --train_file data/de.tsv --language de --output_dir outputs/g2p-de

gruut's language packages keep their lexicon in a SQLite file (`lexicon.db`, table `word_phonemes`: word,
pron_order, phonemes as space-separated IPA). Each word is written with its pronunciations in gruut's order, one
line a pronunciation (`word<TAB>p h o n e s`), words sorted: what `--train_file` reads.
"""

import argparse
import importlib.util
import sqlite3
import sys
import tarfile
import tempfile
from pathlib import Path


def lexicon_db(source: str, workdir: Path) -> Path:
    """The lexicon.db of an installed package (a language code: "de"), an sdist (.tar.gz) or the file itself."""
    path = Path(source)
    if path.name.endswith((".tar.gz", ".tgz")):
        with tarfile.open(path) as archive:
            members = [m for m in archive.getmembers() if m.name.endswith("/lexicon.db") and "espeak" not in m.name]
            if not members:
                raise SystemExit(f"{source} has no lexicon.db: is it a gruut-lang-* source distribution?")
            archive.extract(members[0], workdir, filter="data")
            return workdir / members[0].name
    if path.is_file():
        return path
    spec = importlib.util.find_spec(f"gruut_lang_{source}")
    if spec is None or spec.origin is None:
        raise SystemExit(f"{source}: not a file, and gruut_lang_{source} is not installed (pip install gruut-lang-X).")
    return Path(spec.origin).parent / "lexicon.db"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a language code of an installed gruut-lang-* package, its sdist, or lexicon.db")
    parser.add_argument("output", help="the tab-separated lexicon to write")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        with sqlite3.connect(lexicon_db(args.source, Path(tmp))) as db:
            rows = db.execute("SELECT word, phonemes FROM word_phonemes ORDER BY word, pron_order, id").fetchall()
    lines = [f"{word}\t{' '.join(phones.split())}\n" for word, phones in rows if word.strip() and phones.strip()]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("".join(lines), encoding="utf-8")
    words = len({line.split("\t", 1)[0] for line in lines})
    print(
        f"{args.output}: {words:,} words, {len(lines):,} pronunciations ({len(rows) - len(lines)} empty rows left out)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
