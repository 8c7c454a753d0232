"""CTranslate2 serving (hf_minimal.serving.ctranslate2): the export gives generate's tokens and log-probabilities, the
engine runs where torch cannot be imported, and the word-list command line writes a CMUdict-format lexicon."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("ctranslate2", reason="the `serve` extra (in `test`): pip install -e '.[test]'")

from conftest import EXAMPLES, ROOT
from limits import TIMEOUT

from hf_minimal import MinimalTransformerConfig, MinimalTransformerForConditionalGeneration, g2p
from hf_minimal.serving.ctranslate2 import Engine, export
from hf_minimal.serving.ctranslate2 import main as export_main

PREDICT = EXAMPLES / "g2p" / "predict_g2p.py"
WORDS = ["hello", "world", "a", "transformer", "attention", "zebra", "queue", "x", "phonetics", "psychology"]
# Test-split words sorted by length, so that batches of any size are the engine's own.
TEST_WORDS = sorted(g2p.load_cmudict()["test"]["word"][:2000:5], key=len)


def make_model(norm_first: bool = False, tie: bool = True, steps: int = 0, **overrides):
    """A small G2P model, random or trained `steps` Adam steps on 1,024 CMUdict words (enough to end its outputs
    with </s> and so to exercise beam search's stopping rule), and its tokenizer."""
    tokenizer = g2p.build_tokenizer()
    values = dict(vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=1, num_heads=4, d_ff=64)
    config = MinimalTransformerConfig(
        **{**values, **overrides}, dropout=0.0, norm_first=norm_first, tie_word_embeddings=tie
    )
    torch.manual_seed(0)
    model = MinimalTransformerForConditionalGeneration(config)
    if steps:
        train = g2p.load_cmudict()["train"].select(range(0, 80_000, 78))  # 1,026 words spread over the alphabet
        rows = g2p.tokenize_split(train, tokenizer, every_pronunciation=False)
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        model.train()
        for step in range(steps):
            batch = rows.select(range((64 * step) % 960, (64 * step) % 960 + 64))
            inputs = tokenizer.pad({"input_ids": batch["input_ids"]}, return_tensors="pt")
            labels = tokenizer.pad({"input_ids": batch["labels"]}, return_tensors="pt")["input_ids"]
            labels[labels == tokenizer.pad_token_id] = -100
            model(**inputs, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return model.eval(), tokenizer


def save(model, tokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def generate_texts(model, tokenizer, words: list[str], num_beams: int, batch_size: int = 0, **kwargs) -> list[str]:
    """model.generate on padded batches of `batch_size` words in the given order (one batch by default), with the
    engine's default length rule: 2 x the batch's longest source + 8. Words sorted by length give the engine's
    batches."""
    texts, size = [], batch_size or len(words)
    for start in range(0, len(words), size):
        batch = tokenizer(words[start : start + size], return_tensors="pt", padding=True)
        max_length = 2 * batch["input_ids"].size(1) + 8
        with torch.no_grad():
            out = model.generate(**batch, num_beams=num_beams, max_length=max_length, do_sample=False, **kwargs)
        texts += tokenizer.batch_decode(out, skip_special_tokens=True)
    return texts


def mean_log_probability(model, tokenizer, word: str, phones: str) -> float:
    """The score both beam searches maximise: the output's log-probability over its length (with </s>)."""
    batch = tokenizer([word], text_target=[phones], return_tensors="pt")
    with torch.no_grad():
        log_probs = model(**batch).logits.log_softmax(-1)[0]
    return float(log_probs.gather(-1, batch["labels"][0, :, None]).mean())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The trained post-LN tied model: its folder, float32 export and int8 export."""
    model, tokenizer = make_model(steps=150)
    folder = save(model, tokenizer, tmp_path_factory.mktemp("ct2") / "model")
    return (
        model,
        tokenizer,
        folder,
        export(folder, folder.parent / "ct2"),
        export(folder, folder.parent / "int8", "int8"),
    )


@pytest.mark.parametrize(
    ("norm_first", "tie", "steps"),
    [(False, True, 0), (True, False, 0), (False, False, 150), (True, True, 150)],
    ids=["post-LN tied random", "pre-LN untied random", "post-LN untied trained", "pre-LN tied trained"],
)
def test_engine_gives_generates_tokens(tmp_path, norm_first, tie, steps):
    model, tokenizer = make_model(norm_first, tie, steps)
    engine = Engine(export(save(model, tokenizer, tmp_path / "model"), tmp_path / "ct2"), workers=2)
    assert engine.translate(WORDS, batch_size=len(WORDS)) == generate_texts(model, tokenizer, WORDS, 1)
    if steps:  # a random model never emits </s>: its beams all end at max_length (compared below)
        words = TEST_WORDS[:200]
        beams = engine.translate(words, num_beams=5, batch_size=50, early_stopping=True)
        assert beams == generate_texts(model, tokenizer, words, 5, batch_size=50, early_stopping=True)


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """The trained English model shipped in the package (its outputs have clear margins, unlike a fixture trained
    for seconds, whose near-ties fall either way with the CPU's kernels), and its float32 and int8 exports."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from hf_minimal.g2p.pronounce import MODELS, MODELS_DIR

    folder = MODELS_DIR / MODELS["en-accurate"]
    model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
    out = tmp_path_factory.mktemp("shipped")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer, export(folder, out / "ct2"), export(folder, out / "int8", "int8")


def test_default_beam_search_differs_from_generates_only_on_near_ties(shipped):
    """generate's default keeps a beam search going while a running beam might still win, a rule CTranslate2 lacks
    (it stops after 2 x num_beams finished hypotheses). On a trained model both find the same best output; where
    they differ, the two outputs' scores (float64, teacher-forced) tie within float32's rounding, or the engine's
    longer search found the better one."""
    model, tokenizer, path, _ = shipped
    words = TEST_WORDS[:200]
    ours = Engine(path).translate(words, num_beams=5, batch_size=50)
    theirs = generate_texts(model, tokenizer, words, 5, batch_size=50)
    for word, a, b in zip(words, ours, theirs, strict=True):
        if a != b:
            gap = mean_log_probability(model, tokenizer, word, a) - mean_log_probability(model, tokenizer, word, b)
            assert gap > -1e-4, (word, a, b, gap)


def test_engine_log_probabilities_match_the_model(trained):
    """Every teacher-forced token's log-probability, not just the argmax: positions, √d_model and norms are right."""
    model, tokenizer, _, path, _ = trained
    engine = Engine(path, workers=1)
    targets = generate_texts(model, tokenizer, WORDS, 1)
    sources = [engine.tokenizer.encode(word).tokens for word in WORDS]
    scored = engine.translator.score_batch(sources, [t.split() for t in targets])
    for word, target, result in zip(WORDS, targets, scored, strict=True):
        batch = tokenizer([word], text_target=[target], return_tensors="pt")
        with torch.no_grad():
            logits = model(**batch).logits.double().log_softmax(-1)[0]
        expected = logits.gather(-1, batch["labels"][0, :, None])[:, 0]  # phones and </s>
        assert result.log_probs == pytest.approx(expected.tolist(), abs=1e-4)


def test_beam_search_stops_as_generate_does_when_outputs_never_end(tmp_path):
    """A random model never emits </s>: every hypothesis runs to max_length, where both keep the best-scored."""
    model, tokenizer = make_model()
    engine = Engine(export(save(model, tokenizer, tmp_path / "model"), tmp_path / "ct2"), workers=1)
    for word in WORDS[:4]:
        for max_length in (8, 12, 20):
            expected = tokenizer.batch_decode(
                model.generate(**tokenizer([word], return_tensors="pt"), num_beams=5, max_length=max_length),
                skip_special_tokens=True,
            )
            assert engine.translate([word], num_beams=5, max_length=max_length) == expected


def test_int8_export_is_smaller_and_close(shipped):
    """int8 weights perturb each log-probability a little (a wrong table, scale or norm moves them by whole nats), so
    on a trained model they change only outputs whose best and runner-up were close: a few percent of words (1-5% on
    the CPUs measured, docs/performance.md), never most."""
    _, _, path, int8 = shipped
    assert Engine(int8).translator.compute_type.startswith("int8") and Engine(path).translator.compute_type == "float32"
    assert (int8 / "model.bin").stat().st_size < 0.7 * (path / "model.bin").stat().st_size  # the table stays float
    assert json.loads((int8 / "hf_minimal_ctranslate2.json").read_text())["quantization"] == "int8"
    words = TEST_WORDS[:200]
    targets = Engine(path).translate(words)
    sources = [Engine(path).tokenizer.encode(word).tokens for word in words]
    exact, quantised = (Engine(p, workers=1).translator.score_batch(sources, [t.split() for t in targets])
                        for p in (path, int8))  # fmt: skip
    drift = [abs(sum(a.log_probs) - sum(b.log_probs)) / len(a.log_probs) for a, b in zip(exact, quantised, strict=True)]
    assert max(drift) < 0.05, max(drift)  # nats per token
    same = sum(a == b for a, b in zip(Engine(int8).translate(words), targets, strict=True))
    assert same >= 0.8 * len(words)


def test_export_pads_a_vocabulary_smaller_than_the_embeddings(tmp_path):
    tokenizer = g2p.build_tokenizer()
    model, _ = make_model(vocab_size=len(tokenizer) + 8)  # embeddings rounded up: 8 rows no token reaches
    path = export(save(model, tokenizer, tmp_path / "model"), tmp_path / "ct2")
    vocabulary = json.loads((path / "shared_vocabulary.json").read_text())
    assert len(vocabulary) == len(tokenizer) + 8 and vocabulary[-1] == f"<unused_{len(tokenizer) + 7}>"
    outputs = Engine(path).translate(WORDS[:3], batch_size=3)
    assert outputs == generate_texts(model, tokenizer, WORDS[:3], 1)


@pytest.mark.parametrize("problem", ["activation", "bigger tokenizer", "exists", "quantization", "not ours"])
def test_export_refuses_what_it_cannot_serve_with_a_clear_error(tmp_path, capsys, problem):
    model, tokenizer = make_model(activation="mish" if problem == "activation" else "relu")
    if problem == "bigger tokenizer":
        model.resize_token_embeddings(len(tokenizer) - 1)
    folder = save(model, tokenizer, tmp_path / "model")
    if problem == "not ours":
        config = json.loads((folder / "config.json").read_text())
        del config["auto_map"]
        (folder / "config.json").write_text(json.dumps({**config, "model_type": "marian"}))
    capsys.readouterr()  # what saving printed
    args = [str(folder), str(tmp_path / ("model" if problem == "exists" else "ct2"))]
    if problem == "quantization":
        with pytest.raises(ValueError, match=r"quantization='int3' is not one of CTranslate2's types"):
            export(folder, tmp_path / "ct2", quantization="int3")
        return
    code = export_main(args)
    err = capsys.readouterr().err
    assert code == 1 and f"Cannot export {str(folder)!r}: " in err and "Traceback" not in err
    expected = {
        "activation": "activation='mish' has no CTranslate2 equivalent",
        "bigger tokenizer": f"The tokenizer has {len(tokenizer)} tokens but the model only {len(tokenizer) - 1}",
        "exists": "already exists: choose another folder, or pass force=True (--force)",
        "not ours": "not a MinimalTransformer",
    }[problem]
    assert expected in err
    assert not (tmp_path / "ct2").exists()


def test_engine_refuses_a_folder_without_a_model_and_inputs_past_the_table(trained, tmp_path):
    _, _, folder, _, _ = trained
    with pytest.raises(FileNotFoundError, match=r"No CTranslate2 model in .*-m hf_minimal\.serving\.ctranslate2"):
        Engine(folder)  # the transformers folder, not its export
    short = export(folder, tmp_path / "short", max_positions=40)
    engine = Engine(short)
    assert engine.translate(["abcdefghijklmn"])  # 15 tokens: 2 x 15 + 8 = 38 positions fit
    with pytest.raises(
        ValueError, match=r"needs 42 positions; this export has 40\. Export again with --max_positions 84"
    ):
        engine.translate(["abcdefghijklmnop"])  # 17 tokens: 2 x 17 + 8 = 42


def lexicon(text: str) -> list[tuple[str, str]]:
    return [tuple(line.split("  ", 1)) for line in text.splitlines()]


def test_word_list_command_line_writes_a_cmudict_lexicon(trained, tmp_path):
    model, tokenizer, _, path, _ = trained
    long_word = "abcdefghij" * 10  # 100 letters
    (tmp_path / "words.txt").write_text("Hello\n\n   \nnew york\ncafé\n" + long_word + "\nzebra\n", encoding="utf-8")
    command = [sys.executable, str(PREDICT), str(path), "--engine", "ctranslate2", "--num_beams", "1"]
    result = subprocess.run(
        [*command, "--word_list", str(tmp_path / "words.txt"), "--output", str(tmp_path / "words.dict")],
        capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout == "", result.stderr[-2000:]
    assert "skipped 2 empty line(s)" in result.stderr and "'café' has characters outside" in result.stderr
    entries = lexicon((tmp_path / "words.dict").read_text(encoding="utf-8"))
    words = ["hello", "new", "york", "café", long_word, "zebra"]
    assert [word for word, _ in entries] == words
    assert [phones for _, phones in entries] == g2p.transcribe(model, tokenizer, words)  # PyTorch's greedy tokens
    piped = subprocess.run(
        [*command, "--word_list", "-"],
        input="zebra\nhello\n",
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=ROOT,
    )
    assert piped.returncode == 0 and lexicon(piped.stdout) == [entries[-1], entries[0]]


def test_word_list_errors_are_named(trained, tmp_path):
    _, _, _, path, _ = trained
    (tmp_path / "latin1.txt").write_bytes("café\n".encode("latin-1"))
    for word_list, message in (
        (tmp_path / "missing.txt", "cannot read the word list"),
        (tmp_path / "latin1.txt", "cannot read the word list"),
    ):
        result = subprocess.run(
            [sys.executable, str(PREDICT), str(path), "--engine", "ctranslate2", "--word_list", str(word_list)],
            capture_output=True, text=True, timeout=TIMEOUT, cwd=ROOT,
        )  # fmt: skip
        assert result.returncode == 2 and message in result.stderr and str(word_list) in result.stderr
        assert "Traceback" not in result.stderr


BLOCK_TORCH = (
    "import runpy, sys\n"
    "sys.modules['torch'] = sys.modules['transformers'] = None  # importing either now fails\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def test_serving_needs_neither_torch_nor_transformers(trained, tmp_path):
    model, tokenizer, _, path, _ = trained
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    (tmp_path / "words.txt").write_text("\n".join(WORDS) + "\n")
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, str(PREDICT), str(path), "--engine", "ctranslate2",
         "--word_list", str(tmp_path / "words.txt")],
        capture_output=True, text=True, timeout=TIMEOUT, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert lexicon(result.stdout) == list(zip(WORDS, g2p.transcribe(model, tokenizer, WORDS, num_beams=5), strict=True))
    probe = "import hf_minimal\ntry:\n    hf_minimal.MinimalTransformerConfig\nexcept ImportError as e:\n    print(e)\n"
    (tmp_path / "probe.py").write_text(probe)
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, str(tmp_path / "probe.py")], capture_output=True, text=True, env=env
    )
    assert result.returncode == 0 and "needs torch and transformers" in result.stdout, result.stderr[-2000:]


def test_transcribe_and_evaluate_take_an_engine(trained):
    model, tokenizer, _, path, _ = trained
    engine = Engine(path)
    assert g2p.transcribe(engine, None, WORDS, num_beams=5) == g2p.transcribe(model, tokenizer, WORDS, num_beams=5)
    test = g2p.load_cmudict()["test"].select(range(64))
    assert g2p.evaluate_split(engine, None, test) == g2p.evaluate_split(model, tokenizer, test)
