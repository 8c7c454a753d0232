"""Fine-tuning a trained G2P model (examples/g2p/train_g2p.py --model_name_or_path): from a folder and from a Hub id,
the vocabulary grown to stressed phones without losing what was learned, contradicting size flags refused, the base
named in the card and results.json, and transfer that beats training from scratch for the same steps. The trained
base also checks the fast transcription paths (worker threads, the speed benchmark's Marian twin)."""

import glob
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from conftest import BENCH, CONFIGS, ROOT, load_script, tiny_config
from huggingface_hub import ModelCard
from limits import TIMEOUT
from test_auto import BLOCK_HF_MINIMAL
from test_train_g2p import SCRIPT, TINY, run
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_minimal import MinimalTransformerForConditionalGeneration, g2p

FINETUNE_RECIPE = str(CONFIGS / "recipes" / "g2p-finetune-stress.json")
# The same data, optimiser and evaluation for the base, the fine-tune and the from-scratch run.
COMMON = [
    *("--max_eval_samples", "200", "--max_test_samples", "100", "--test_num_beams", "1"),
    *("--per_device_train_batch_size", "32", "--per_device_eval_batch_size", "200", "--disable_tqdm", "true"),
    *("--learning_rate", "3e-3", "--warmup_steps", "30", "--cooldown_fraction", "0", "--max_train_minutes", "5"),
    *("--save_total_limit", "1", "--logging_steps", "10"),
]


def train(out: Path, *flags: str, env: dict | None = None) -> dict:
    command = [sys.executable, str(SCRIPT), *flags, *COMMON, "--output_dir", str(out)]
    if env is None:
        run(command, timeout=TIMEOUT)
    else:
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    return json.loads((out / "results.json").read_text())


def final_eval_loss(out: Path) -> float:
    (state,) = glob.glob(str(out / "checkpoint-*" / "trainer_state.json"))
    history = json.loads(Path(state).read_text())["log_history"]
    return [entry["eval_loss"] for entry in history if "eval_loss" in entry][-1]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A tiny stress-less model trained long enough to have learned letter-to-phone rules (validation WER < 100)."""
    out = tmp_path_factory.mktemp("finetune") / "base"
    steps = ["--max_steps", "1200", "--eval_steps", "1200", "--save_steps", "1200", "--max_train_samples", "20000"]
    results = train(out, *TINY, *steps)
    assert results["test"]["beam1"]["per"] < 60  # far from an untrained model's ~100
    return out


def test_grow_vocabulary_keeps_old_ids_copies_base_vowels_and_the_tie(tmp_path):
    torch.manual_seed(0)
    tokenizer = g2p.build_tokenizer(keep_stress=False)
    config = tiny_config(vocab_size=len(tokenizer), d_model=16)
    model = MinimalTransformerForConditionalGeneration(config)
    before = model.get_input_embeddings().weight.detach().clone()
    grown = g2p.grow_vocabulary(model, tokenizer, keep_stress=True)
    old, new = tokenizer.get_vocab(), grown.get_vocab()
    assert len(grown) == len(tokenizer) + 45 == 117  # 15 vowels x 3 stress marks
    assert all(new[token] == i for token, i in old.items())  # every old id keeps its meaning
    assert set(g2p.phone_inventory(keep_stress=True)) <= set(new) and g2p.keeps_stress(grown)
    shared = model.get_input_embeddings().weight
    assert model.lm_head.weight is shared and model.model.encoder.embed_tokens.weight is shared  # still one matrix
    assert model.config.vocab_size == 117 and shared.shape == (117, 16)
    torch.testing.assert_close(shared[: len(old)], before, rtol=0, atol=0)  # old rows untouched
    for vowel in ("AH", "IY", "ER"):
        for stress in "012":
            torch.testing.assert_close(shared[new[vowel + stress]], before[old[vowel]], rtol=0, atol=0)
    assert grown("hello", text_target="HH AH0 L OW1").labels == [new[p] for p in ("HH", "AH0", "L", "OW1", "</s>")]
    assert grown("hello").input_ids == tokenizer("hello").input_ids  # the letters read the same
    # Saved and reloaded: the same vocabulary, rows and tie.
    model.save_pretrained(tmp_path)
    grown.save_pretrained(tmp_path)
    reloaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path).get_vocab() == new
    assert reloaded.lm_head.weight is reloaded.model.shared.weight
    torch.testing.assert_close(reloaded.model.shared.weight, shared, rtol=0, atol=0)
    assert g2p.grow_vocabulary(model, grown, keep_stress=True) is grown  # nothing more to add
    with pytest.raises(ValueError, match="fine-tuning it without stress is not supported"):
        g2p.grow_vocabulary(model, grown, keep_stress=False)


def test_fine_tuning_beats_training_from_scratch_for_the_same_steps(base, tmp_path):
    steps = ["--max_steps", "150", "--eval_steps", "150", "--save_steps", "150", "--max_train_samples", "2000"]
    tuned = train(tmp_path / "tuned", FINETUNE_RECIPE, "--model_name_or_path", str(base), *steps)
    scratch = train(tmp_path / "scratch", *TINY, "--keep_stress", "true", *steps)
    assert tuned["keep_stress"] and scratch["keep_stress"] and tuned["num_parameters"] > scratch["num_parameters"]
    tuned_loss, scratch_loss = final_eval_loss(tmp_path / "tuned"), final_eval_loss(tmp_path / "scratch")
    assert tuned_loss < 0.8 * scratch_loss, (tuned_loss, scratch_loss)
    assert tuned["test"]["beam1"]["per"] < scratch["test"]["beam1"]["per"]
    # The output has stress digits: the grown vocabulary is what it predicts with.
    assert any(ch.isdigit() for e in tuned["examples"].values() for ch in e["predicted"])
    # The base is recorded in results.json and the card.
    recorded = tuned["base_model"]
    assert recorded["name_or_path"] == str(base) and recorded["is_hub_id"] is False
    assert (recorded["vocab_size"], recorded["new_tokens"]) == (72, 45)
    assert recorded["test"] == json.loads((base / "results.json").read_text())["test"]
    assert recorded["model_code"] == "hf_minimal.modeling_minimal_transformer"
    assert scratch["base_model"] is None
    card = ModelCard.load(tmp_path / "tuned" / "README.md")
    assert f"fine-tuned from `{base}`" in card.text and "grown by 45 tokens" in card.text
    assert card.data.base_model is None  # a local folder is no Hub id: named in the text only
    model, tokenizer = g2p.load_model(str(tmp_path / "tuned"))
    assert len(tokenizer) == model.config.vocab_size == 117 and model.lm_head.weight is model.model.shared.weight


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--d_model", "64"], "d_model=64 (the model has 32)"),
        (["--decoder_layers", "3", "--num_heads", "4"], "decoder_layers=3 (the model has 1), num_heads=4"),
    ],
)
def test_size_flags_that_contradict_the_loaded_model_are_refused(base, flags, named):
    script = load_script(SCRIPT)
    with pytest.raises(SystemExit, match=rf"--model_name_or_path .*base: {re.escape(named)}.*drop these"):
        script.main([FINETUNE_RECIPE, "--model_name_or_path", str(base), *flags, "--output_dir", "/nonexistent"])
    # The default recipe sets the default model's size (d_model 128), which this tiny base contradicts too.
    with pytest.raises(SystemExit, match=r"d_model=128 \(the model has 32\)"):
        script.main(["--model_name_or_path", str(base), "--output_dir", "/nonexistent"])


def test_fine_tunes_from_a_hub_id_and_shares_a_model_that_loads_without_the_package(base, hub, hub_env, tmp_path):
    """The base on the (loopback) Hub; fine-tuned from its id, pushed, and loaded where hf_minimal is blocked."""
    env = {**hub_env("finetune"), "OMP_NUM_THREADS": "1"}
    upload = (  # the weights, config, tokenizer and the model code, as train_g2p.py --push_to_hub publishes them
        "import sys; from huggingface_hub import HfApi; api = HfApi(); api.create_repo('me/g2p-base'); "
        "api.upload_folder(repo_id='me/g2p-base', folder_path=sys.argv[1], allow_patterns=['*.json', '*.safetensors', "
        "'*.py'])"
    )
    subprocess.run([sys.executable, "-c", upload, str(base)], env=env, check=True, capture_output=True, timeout=TIMEOUT)
    steps = ["--max_steps", "10", "--eval_steps", "10", "--save_steps", "10", "--max_train_samples", "200"]
    push = ["--push_to_hub", "true", "--hub_model_id", "me/g2p-stress"]
    results = train(tmp_path / "tuned", FINETUNE_RECIPE, "--model_name_or_path", "me/g2p-base", *steps, *push, env=env)
    recorded = results["base_model"]
    assert recorded["name_or_path"] == "me/g2p-base" and recorded["is_hub_id"]
    assert recorded["new_tokens"] == 45 and recorded["test"] is None  # no results.json of the base read locally
    card = ModelCard(hub.read("me/g2p-stress", "README.md").decode())
    assert card.data.base_model == "me/g2p-base" and card.data.base_model_relation == "finetune"
    assert "fine-tuned from `me/g2p-base`" in card.text
    load = BLOCK_HF_MINIMAL + textwrap.dedent(
        """
        import json
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
        tokenizer = AutoTokenizer.from_pretrained("me/g2p-stress", trust_remote_code=True)
        model = AutoModelForSeq2SeqLM.from_pretrained("me/g2p-stress", trust_remote_code=True)
        batch = tokenizer(["hello"], return_tensors="pt")
        phones = tokenizer.batch_decode(model.generate(**batch, max_length=12), skip_special_tokens=True)
        print(json.dumps({"module": type(model).__module__, "vocab": len(tokenizer), "phones": phones}))
        """
    )
    result = subprocess.run([sys.executable, "-c", load], env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["module"].startswith("transformers_modules.") and loaded["vocab"] == 117
    assert hub.server_errors == []


def test_greedy_decode_gives_generates_tokens_with_rows_finishing_at_different_steps(base):
    """transcribe's fast path on a trained model: the tokens of plain `generate`, although rows leave the batch."""
    model, tokenizer = g2p.load_model(str(base))
    words = sorted(g2p.load_cmudict()["test"]["word"][:300], key=len)  # transcribe's order: one batch of 300
    batch = tokenizer(words, return_tensors="pt", padding=True)
    max_length = 2 * batch["input_ids"].size(1) + 8
    expected = model.generate(**batch, max_length=max_length, do_sample=False)
    got = g2p.greedy_decode(model, batch["input_ids"], batch["attention_mask"], max_length)
    lengths = (expected != model.config.pad_token_id).sum(-1)
    assert lengths.min() < lengths.max() - 3  # the batch really does shrink along the way
    assert got.shape == expected.shape and torch.equal(got, expected)
    transcribed = g2p.transcribe(model, tokenizer, words, batch_size=300)
    assert transcribed == tokenizer.batch_decode(expected, skip_special_tokens=True)


def test_transcribe_on_worker_threads_gives_the_one_thread_outputs_and_restores_the_setting(base):
    """transcribe shares batches among single-threaded workers: the same pronunciations, greedy and beam, as one
    thread decoding them in order; torch's thread setting is back afterwards; a datasets Column is accepted."""
    model, tokenizer = g2p.load_model(str(base))
    words = g2p.load_cmudict()["test"].select(range(600))["word"]  # a datasets Column, as evaluate_split passes
    listed = list(words)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        sequential = {beams: g2p.transcribe(model, tokenizer, words, beams, batch_size=64) for beams in (1, 3)}
        torch.set_num_threads(2)
        for beams in (1, 3):
            assert g2p.transcribe(model, tokenizer, words, beams, batch_size=64) == sequential[beams]
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    first_batch = sorted(range(len(listed)), key=lambda i: len(listed[i]))[:64]  # transcribe's first batch
    batch = tokenizer([listed[i] for i in first_batch], return_tensors="pt", padding=True)
    expected = model.generate(**batch, num_beams=3, max_length=2 * batch["input_ids"].size(1) + 8, do_sample=False)
    got = [sequential[3][i] for i in first_batch]
    assert got == tokenizer.batch_decode(expected, skip_special_tokens=True)


def test_worker_errors_reach_the_caller_and_the_thread_setting_is_restored():
    def fail_on_three(n):
        if n == 3:
            raise ValueError("three")
        return torch.is_grad_enabled(), torch.get_num_threads()

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with torch.no_grad():
            # The workers inherit the caller's no-grad mode and run their operations on one thread.
            assert g2p.map_on_cpu_threads(fail_on_three, [1, 2], "cpu") == [(False, 1), (False, 1)]
            with pytest.raises(ValueError, match="three"):
                g2p.map_on_cpu_threads(fail_on_three, [1, 2, 3, 4], "cpu")
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_speed_benchmarks_marian_twin_has_our_logits_and_tokens(base, monkeypatch):
    """bench/g2p_speed.py compares us with a MarianMTModel that holds our weights: the comparison is only fair if
    that twin is the same function, so its greedy and beam tokens must equal ours word for word."""
    bench = load_script(BENCH / "g2p_speed.py")
    model, tokenizer = g2p.load_model(str(base), "cpu")
    marian = bench.marian_twin(model)  # itself refuses logits that differ by more than 1e-4
    words = list(g2p.load_cmudict()["test"]["word"][:300])
    for beams in (1, 3):
        ours = bench.batched_generate(model, tokenizer, words, num_beams=beams)
        assert bench.batched_generate(marian, tokenizer, words, num_beams=beams) == ours
    assert g2p.transcribe(model, tokenizer, words) == bench.batched_generate(model, tokenizer, words)
