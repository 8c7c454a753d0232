"""A model for any task from a file of pairs (hf_minimal.pairs, examples/pairs/new_model.py,
examples/pairs/train_pairs.py): the vocabulary covers the data, the folder loads without hf_minimal, a short
Seq2SeqTrainer run learns, and bad files get errors that name the file and the line."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, EXAMPLES, load_script
from limits import TIMEOUT
from transformers import AutoTokenizer, DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

from hf_minimal import pairs

WORDS = ["cat", "dog", "bird", "fish", "horse", "mouse", "sheep", "goat", "duck", "frog", "snake", "tiger"]


def script(name: str):
    return load_script(EXAMPLES / "pairs" / f"{name}.py").main


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows), "utf-8")
    return path


def reversal_pairs(n: int = 240) -> list[dict]:
    """A toy task with spaces and non-ASCII characters: words and short phrases, reversed and upper-cased."""
    rows = []
    for i in range(n):
        text = " ".join(WORDS[(i * k) % len(WORDS)] for k in range(1, 2 + i % 2)) + ("é" if i % 7 == 0 else "")
        rows.append({"src": text, "tgt": text[::-1].upper()})
    return rows


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pairs")
    write_jsonl(path / "train.jsonl", reversal_pairs())
    code = script("new_model")(
        ["--train_file", str(path / "train.jsonl"), "--source_key", "src", "--target_key", "tgt",
         "--config", str(CONFIGS / "models" / "transformer-small.json"), "--output_dir", str(path / "model")]
    )  # fmt: skip
    assert code == 0
    return path


@pytest.mark.parametrize("kind", pairs.KINDS)
def test_vocabulary_covers_the_data_and_round_trips_it(kind):
    rows = reversal_pairs()
    texts = [r["src"] for r in rows] + [r["tgt"] for r in rows]
    tokenizer = pairs.build_tokenizer(texts, kind=kind, vocab_size=60)
    assert tokenizer.convert_ids_to_tokens(list(range(4))) == list(pairs.SPECIAL_TOKENS)
    encoded = tokenizer(texts)["input_ids"]
    assert all(ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids for ids in encoded)
    assert tokenizer.batch_decode(encoded, skip_special_tokens=True) == texts  # spaces and "é" included
    if kind == "char":
        assert len(tokenizer) == 4 + len(set("".join(texts)))
    else:
        assert len(tokenizer) <= 60 and sum(map(len, encoded)) - len(texts) < sum(map(len, texts))  # merges
    assert tokenizer.unk_token_id in tokenizer("ž")["input_ids"]  # never seen: <unk>


def test_new_model_folder_loads_in_a_fresh_process_with_remote_code_only(folder):
    config = json.loads((folder / "model" / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    assert config["vocab_size"] == len(tokenizer) and config["d_model"] == 128
    assert (config["pad_token_id"], config["bos_token_id"], config["eos_token_id"]) == (0, 1, 2)
    assert {"model.safetensors", "tokenizer.json", "modeling_minimal_transformer.py"} <= set(
        os.listdir(folder / "model")
    )
    probe = (
        "import sys\n"
        "sys.modules['hf_minimal'] = None  # only the folder's own code may run\n"
        "from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n"
        f"path = {str(folder / 'model')!r}\n"
        "model = AutoModelForSeq2SeqLM.from_pretrained(path, trust_remote_code=True)\n"
        "tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)\n"
        "out = model.generate(**tokenizer(['cat dog'], return_tensors='pt'), max_new_tokens=5)\n"
        "print(type(model).__module__, out.shape[1] <= 6, model.generation_config.max_length)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=TIMEOUT, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    module, short, max_length = result.stdout.split()
    assert module.startswith("transformers_modules.") and short == "True"
    longest_target = max(len(r["tgt"]) + 1 for r in reversal_pairs())
    assert int(max_length) == 2 * longest_target + 1


def test_a_short_seq2seq_trainer_run_lowers_the_loss_and_generate_decodes(folder, tmp_path):
    from transformers import AutoModelForSeq2SeqLM

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(folder / "model")
    model = AutoModelForSeq2SeqLM.from_pretrained(folder / "model")
    sources, targets = pairs.read_pairs(folder / "train.jsonl", "src", "tgt")
    rows = [dict(tokenizer(s, text_target=t)) for s, t in zip(sources, targets, strict=True)]
    collate = DataCollatorForSeq2Seq(tokenizer, model=model)
    batch = collate(rows[:32])
    with torch.no_grad():
        before = model(**batch).loss.item()
    args = Seq2SeqTrainingArguments(
        tmp_path, max_steps=60, per_device_train_batch_size=32, learning_rate=3e-3, warmup_steps=10,
        report_to="none", use_cpu=True, save_strategy="no", logging_steps=60, disable_tqdm=True,
    )  # fmt: skip
    Seq2SeqTrainer(model=model, args=args, train_dataset=rows, data_collator=collate).train()
    model.eval()
    with torch.no_grad():
        after = model(**batch).loss.item()
    assert after < 0.5 * before
    out = model.generate(**tokenizer(sources[:4], return_tensors="pt", padding=True), num_beams=2)
    texts = tokenizer.batch_decode(out, skip_special_tokens=True)
    assert all(text and set(text) <= set("".join(targets)) for text in texts)


def test_train_pairs_script_trains_and_scores(folder, tmp_path):
    """The generic Seq2SeqTrainer script end to end on the toy pairs: it trains, saves and writes test scores."""
    out = tmp_path / "trained"
    code = script("train_pairs")(
        ["--model_name_or_path", str(folder / "model"), "--train_file", str(folder / "train.jsonl"),
         "--validation_file", str(folder / "train.jsonl"), "--test_file", str(folder / "train.jsonl"),
         "--source_key", "src", "--target_key", "tgt", "--output_dir", str(out), "--max_steps", "40",
         "--eval_steps", "40", "--save_steps", "40", "--max_eval_samples", "16", "--use_cpu", "--disable_tqdm", "true",
         "--warmup_steps", "10", "--learning_rate", "3e-3"]
    )  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 40 and results["test_beam1"]["pairs"] == 240
    assert 0 <= results["test_beam1"]["cer"] < 100 and (out / "model.safetensors").is_file()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([], "no pairs (the file is empty or blank)"),
        (["", "  "], "no pairs (the file is empty or blank)"),
        ([{"src": "a", "tgt": "b"}, "{not json"], "line 2: not JSON"),
        ([{"src": "a", "tgt": "b"}, {"src": "a"}], "line 2: no key 'tgt' (it has ['src'])"),
        ([{"src": "a", "tgt": 3}], "line 1: 'tgt' is int, not a string"),
        (["[1, 2]"], "line 1: a JSON object is expected, got list"),
    ],
)
def test_bad_pair_files_name_the_file_and_the_line(tmp_path, content, message):
    path = write_jsonl(tmp_path / "pairs.jsonl", content)
    with pytest.raises(ValueError, match=rf"{path}.*{__import__('re').escape(message)}"):
        pairs.read_pairs(path, "src", "tgt")


def test_run_translation_format_and_blank_lines_are_read(tmp_path):
    path = write_jsonl(
        tmp_path / "t.jsonl", [{"translation": {"en": "cat", "de": "Katze"}}, "", {"en": "a", "de": "b"}]
    )
    assert pairs.read_pairs(path, "en", "de") == (["cat", "a"], ["Katze", "b"])


def test_new_model_script_reports_bad_input_without_a_traceback(tmp_path, capsys):
    path = write_jsonl(tmp_path / "pairs.jsonl", [{"src": "a", "tgt": "b"}, {"source": "a"}])
    main = script("new_model")
    args = ["--train_file", str(path), "--source_key", "src", "--target_key", "tgt", "--output_dir"]
    assert main([*args, str(tmp_path / "m")]) == 1
    assert f"Cannot start a model: {path}, line 2: no key 'src'" in capsys.readouterr().err
    assert main([*args[:1], str(tmp_path / "missing.jsonl"), *args[2:], str(tmp_path / "m")]) == 1
    assert "missing.jsonl: no such file" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
