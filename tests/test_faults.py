"""Faults: damaged checkpoints give an error naming the file, pickles are never executed, killed training resumes.

`from_pretrained` of our model classes is strict (see MinimalTransformerPreTrainedModel.from_pretrained): a damaged
model.safetensors or a config.json that does not fit the weights raises instead of leaving random weights behind.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, ROOT, load_script, tiny_config
from huggingface_hub.errors import StrictDataclassClassValidationError
from limits import TIMEOUT
from safetensors.torch import load_file, save_file
from transformers import AutoModel, AutoModelForSeq2SeqLM

from hf_minimal import MinimalTransformerForConditionalGeneration, MinimalTransformerModel

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> tuple[Path, MinimalTransformerForConditionalGeneration]:
    """A saved tiny model (untied LM head too, so that every kind of tensor is in the file) and the model."""
    torch.manual_seed(0)
    model = MinimalTransformerForConditionalGeneration(tiny_config(tie_word_embeddings=False)).eval()
    path = tmp_path_factory.mktemp("ckpt") / "model"
    model.save_pretrained(path)
    return path, model


def _copy(saved_dir: Path, target: Path) -> Path:
    target.mkdir(parents=True)
    for f in saved_dir.iterdir():
        (target / f.name).write_bytes(f.read_bytes())
    return target


def _edit_config(path: Path, **changes) -> None:
    config = json.loads((path / "config.json").read_text())
    config.update(changes)
    (path / "config.json").write_text(json.dumps(config))


# ---------------------------------------------------------------- damaged model.safetensors


@pytest.mark.parametrize("keep", ["nothing", "5 bytes", "half", "all but 4 bytes"])
def test_truncated_weights_raise_an_error_naming_the_file(saved, tmp_path, keep):
    path = _copy(saved[0], tmp_path / "copy")
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: {"nothing": 0, "5 bytes": 5, "half": len(data) // 2, "all but 4 bytes": -4}[keep]])
    for loader in (AutoModelForSeq2SeqLM, MinimalTransformerForConditionalGeneration, AutoModel):
        with pytest.raises(OSError, match=rf"^{weights} is damaged or truncated \(.*\)\. Download or save the model"):
            loader.from_pretrained(path)


@pytest.mark.parametrize("damage", ["header bytes", "header length"])
def test_corrupt_header_raises_an_error_naming_the_file(saved, tmp_path, damage):
    path = _copy(saved[0], tmp_path / "copy")
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    if damage == "header bytes":
        data[10:20] = b"\xff" * 10  # invalid UTF-8 inside the JSON header
    else:
        data[:8] = (10**12).to_bytes(8, "little")  # a header longer than the file
    weights.write_bytes(bytes(data))
    with pytest.raises(OSError, match=rf"^{weights} is damaged or truncated"):
        AutoModelForSeq2SeqLM.from_pretrained(path)


def test_flipped_bytes_inside_tensor_data_load_undetected(saved, tmp_path):
    # The behaviour that ships, documented in docs/reliability.md: safetensors stores no checksum, so bytes changed
    # inside a tensor (the header intact) load. The Hub's sha256 of each file is how to detect this.
    path = _copy(saved[0], tmp_path / "copy")
    weights = path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-64:] = b"\x00" * 64
    weights.write_bytes(bytes(data))
    loaded = AutoModelForSeq2SeqLM.from_pretrained(path)
    before, after = saved[1].state_dict(), loaded.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)


# ---------------------------------------------------------------- config.json that does not fit the weights


@pytest.mark.parametrize(
    ("changes", "first_key", "shapes"),
    [
        ({"d_model": 32}, "lm_head.weight", r"\(23, 16\) in the weights but \(23, 32\)"),
        ({"d_ff": 64}, "model.decoder.layers.0.fc1.bias", r"\(32,\) in the weights but \(64,\)"),
        ({"vocab_size": 30}, "lm_head.weight", r"\(23, 16\) in the weights but \(30, 16\)"),
    ],
)
def test_config_with_other_sizes_raises_naming_both_files_the_tensor_and_the_fix(
    saved, tmp_path, changes, first_key, shapes
):
    path = _copy(saved[0], tmp_path / "copy")
    _edit_config(path, **changes)
    expected = (
        rf"^{path / 'model.safetensors'} does not fit {path / 'config.json'}: {first_key} is {shapes} in the model the "
        r"config describes \(\d+ tensor\(s\) differ.*\)\. Restore the config.json saved with these weights, or pass "
        r"ignore_mismatched_sizes=True"
    )
    for loader in (AutoModelForSeq2SeqLM, MinimalTransformerForConditionalGeneration):
        with pytest.raises(ValueError, match=expected):
            loader.from_pretrained(path)


def test_ignore_mismatched_sizes_reinitialises_on_purpose(saved, tmp_path):
    path = _copy(saved[0], tmp_path / "copy")
    _edit_config(path, vocab_size=30)
    model = AutoModelForSeq2SeqLM.from_pretrained(path, ignore_mismatched_sizes=True)
    assert model.model.shared.weight.shape == (30, 16)
    # Everything else is the checkpoint's.
    torch.testing.assert_close(model.model.encoder.layers[0].fc1.weight, saved[1].model.encoder.layers[0].fc1.weight)


@pytest.mark.parametrize(
    ("changes", "problem", "example"),
    [
        ({"encoder_layers": 3}, "lacks 16", "model.encoder.layers.2.fc1.bias"),
        ({"norm_first": True}, "lacks 4", "model.decoder.layer_norm.bias"),
        ({"decoder_layers": 1}, "has 26 extra", "model.decoder.layers.1.encoder_attn.k_proj.bias"),
    ],
)
def test_config_with_other_layers_raises_instead_of_half_loading(saved, tmp_path, changes, problem, example):
    path = _copy(saved[0], tmp_path / "copy")
    _edit_config(path, **changes)
    with pytest.raises(
        ValueError,
        match=rf"^{path / 'model.safetensors'} {problem} tensor\(s\) for the model {path / 'config.json'} describes, "
        rf"e\.g\. {example} \(encoder_layers, .*\)\. Restore the config.json .* output_loading_info=True",
    ):
        AutoModelForSeq2SeqLM.from_pretrained(path)


def test_weights_file_missing_a_tensor_raises_and_output_loading_info_is_the_lenient_escape(saved, tmp_path):
    path = _copy(saved[0], tmp_path / "copy")
    tensors = load_file(path / "model.safetensors")
    del tensors["model.encoder.layers.0.fc1.weight"]
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"lacks 1 tensor\(s\) .* e\.g\. model\.encoder\.layers\.0\.fc1\.weight"):
        AutoModelForSeq2SeqLM.from_pretrained(path)
    model, info = AutoModelForSeq2SeqLM.from_pretrained(path, output_loading_info=True)
    assert info["missing_keys"] == {"model.encoder.layers.0.fc1.weight"}
    torch.testing.assert_close(model.model.encoder.layers[0].fc2.weight, saved[1].model.encoder.layers[0].fc2.weight)


def test_the_base_model_still_loads_from_an_lm_checkpoint_but_not_the_reverse(saved, tmp_path):
    base = AutoModel.from_pretrained(saved[0])  # lm_head.weight is unused here, and that is fine
    assert isinstance(base, MinimalTransformerModel)
    torch.testing.assert_close(base.shared.weight, saved[1].model.shared.weight, rtol=0, atol=0)
    MinimalTransformerModel(tiny_config(tie_word_embeddings=False)).save_pretrained(tmp_path / "base")
    with pytest.raises(ValueError, match=r"lacks 1 tensor\(s\) .* e\.g\. lm_head\.weight"):
        AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "base")  # the untied head would be random


@pytest.mark.parametrize(
    ("damage", "error", "message"),
    [
        ("no config.json", ValueError, r"Unrecognized model in {path}\. Should have a `model_type` key in its config"),
        ("config.json not JSON", OSError, r"config file at '{path}/config\.json' is not a valid JSON file"),
        ("no model.safetensors", OSError, r"no file named model\.safetensors found in directory {path}"),
        (
            "num_heads=3",
            StrictDataclassClassValidationError,
            r"d_model=16 is invalid; it must be a multiple of num_heads=3",
        ),
    ],
)
def test_missing_or_broken_files_are_named_by_transformers(saved, tmp_path, damage, error, message):
    path = _copy(saved[0], tmp_path / "copy")
    if damage == "no config.json":
        (path / "config.json").unlink()
    elif damage == "config.json not JSON":
        (path / "config.json").write_text('{"model_type": "minimal_transformer", ')
    elif damage == "no model.safetensors":
        (path / "model.safetensors").unlink()
    else:
        _edit_config(path, num_heads=3)
    with pytest.raises(error, match=message.format(path=path)):
        AutoModelForSeq2SeqLM.from_pretrained(path)


# ---------------------------------------------------------------- pickles: never written, never executed


class _Planted:
    """Unpickling this calls os.system, which writes the marker file: proof that pickled code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _plant(path: Path, marker: Path) -> None:
    """A pytorch_model.bin as torch.save writes it (a zip), holding real weights and the planted object."""
    state = {k: v.clone() for k, v in MinimalTransformerForConditionalGeneration(tiny_config()).state_dict().items()}
    state["planted"] = _Planted(marker)
    torch.save(state, path / "pytorch_model.bin")


def test_the_planted_pickle_does_run_when_unpickled_unsafely(tmp_path):
    # Checks the test's own tool, so that the tests below cannot pass by a broken plant.
    marker = tmp_path / "ran"
    _plant(tmp_path, marker)
    torch.load(tmp_path / "pytorch_model.bin", weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("beside_safetensors", [True, False])
@pytest.mark.parametrize("use_safetensors", [None, False])
def test_from_pretrained_never_executes_a_planted_pickle(saved, tmp_path, beside_safetensors, use_safetensors):
    path = _copy(saved[0], tmp_path / "copy")
    marker = tmp_path / "ran"
    _plant(path, marker)
    if not beside_safetensors:
        (path / "model.safetensors").unlink()
    kwargs = {} if use_safetensors is None else {"use_safetensors": use_safetensors}
    if beside_safetensors and use_safetensors is None:
        model = AutoModelForSeq2SeqLM.from_pretrained(path)  # the safetensors file, untouched by the plant
        torch.testing.assert_close(model.lm_head.weight, saved[1].lm_head.weight, rtol=0, atol=0)
    elif use_safetensors is None:
        with pytest.raises(OSError, match=rf"no file named model\.safetensors found in directory {path}"):
            AutoModelForSeq2SeqLM.from_pretrained(path)  # .bin files are not even opened by default
    else:
        # Asked for the .bin explicitly: transformers unpickles with torch's weights_only=True, which refuses.
        with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
            AutoModelForSeq2SeqLM.from_pretrained(path, **kwargs)
    assert not marker.exists()


def test_only_safetensors_are_written_even_when_asked_for_pickles(tmp_path):
    model = MinimalTransformerForConditionalGeneration(tiny_config())
    model.save_pretrained(tmp_path / "a")
    model.save_pretrained(tmp_path / "b", safe_serialization=False)  # transformers 5 ignores the old switch
    for folder in ("a", "b"):
        names = {f.name for f in (tmp_path / folder).iterdir()}
        assert "model.safetensors" in names and not any(n.endswith(PICKLE_SUFFIXES) for n in names), names


def test_remote_code_copy_is_just_as_strict(saved, tmp_path):
    """The Hub copy of the model file, loaded with trust_remote_code=True where hf_minimal cannot be imported."""
    truncated, mismatched, planted = (
        _copy(saved[0], tmp_path / name) for name in ("truncated", "mismatched", "planted")
    )
    (truncated / "model.safetensors").write_bytes((truncated / "model.safetensors").read_bytes()[:100])
    _edit_config(mismatched, d_ff=64)
    (planted / "model.safetensors").unlink()
    _plant(planted, tmp_path / "ran")
    script = textwrap.dedent(f"""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "hf_minimal":
                    raise ImportError("blocked")
        sys.meta_path.insert(0, Block())
        from transformers import AutoModelForSeq2SeqLM
        for path in {[str(truncated), str(mismatched), str(planted)]!r}:
            try:
                AutoModelForSeq2SeqLM.from_pretrained(path, trust_remote_code=True)
                print("LOADED")
            except Exception as error:
                print(type(error).__name__, str(error).splitlines()[0])
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    lines = result.stdout.splitlines()
    assert result.returncode == 0 and len(lines) == 3, result.stderr[-3000:]
    assert lines[0].startswith(f"OSError {truncated / 'model.safetensors'} is damaged or truncated")
    assert lines[1].startswith(f"ValueError {mismatched / 'model.safetensors'} does not fit")
    assert lines[2] == f"OSError Error no file named model.safetensors found in directory {planted}."
    assert not (tmp_path / "ran").exists()


# ---------------------------------------------------------------- killed training resumes to the same result

TRAIN_G2P = EXAMPLES / "g2p" / "train_g2p.py"
# A tiny model on 64 words: 40 steps, a checkpoint and an evaluation every 10; dropout on, so that the RNG state
# must be restored too. Two flags differ from configs/recipes/g2p-cpu.json, which cannot resume exactly
# (docs/reliability.md): save_only_model false (a model-only checkpoint has no optimizer, scheduler or RNG state to
# resume from) and random sampling (transformers' group_by_length sampler draws the resumed epoch's order from an
# unrestored RNG).
TINY_RUN = [
    *("--max_steps", "40", "--save_steps", "10", "--eval_steps", "10", "--save_total_limit", "10"),
    *("--save_only_model", "false", "--logging_steps", "1", "--warmup_steps", "4", "--seed", "7"),
    *("--max_train_samples", "64", "--max_eval_samples", "8", "--max_test_samples", "8", "--test_num_beams", "1"),
    *("--d_model", "16", "--d_ff", "32", "--encoder_layers", "1", "--decoder_layers", "1", "--num_heads", "2"),
    *("--dropout", "0.1", "--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8"),
    *("--train_sampling_strategy", "random", "--dataloader_num_workers", "0", "--report_to", "none"),
]
VOLATILE = ("runtime", "per_second", "seconds", "load_average", "best_model_checkpoint", "best_checkpoint")


def _train_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_"))}
    # One thread in every run keeps CPU float results bitwise reproducible.
    return {
        **env,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "CUDA_VISIBLE_DEVICES": "",
    }


def _train(output_dir: Path, env: dict, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(TRAIN_G2P), "--output_dir", str(output_dir), *TINY_RUN, *extra]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def _strip(value):
    """A trainer_state / results.json entry without wall-clock times and the run's own folder names."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not any(word in k for word in VOLATILE)}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _state(folder: Path) -> dict | None:
    try:
        return json.loads((folder / "trainer_state.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):  # not written yet, or caught half-written
        return None


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The output folder of one uninterrupted tiny run (checkpoints 10, 20, 30, 40)."""
    full = tmp_path_factory.mktemp("g2p") / "full"
    _train(full, _train_env(full.parent))
    return full


def test_training_killed_after_a_checkpoint_resumes_to_the_same_weights_and_metrics(uninterrupted, tmp_path):
    env = _train_env(tmp_path)
    full, killed = uninterrupted, tmp_path / "killed"

    command = [sys.executable, str(TRAIN_G2P), "--output_dir", str(killed), *TINY_RUN]
    log = (tmp_path / "killed.log").open("w")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    checkpoint = killed / "checkpoint-10"
    deadline = time.monotonic() + TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        state = _state(checkpoint)
        if state is not None and state["global_step"] == 10:  # trainer_state.json is the checkpoint's last file
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    process.wait(timeout=TIMEOUT)
    log.close()
    assert process.returncode == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    assert not (killed / "results.json").exists()  # killed mid-run, not after it
    before_resume = load_file(checkpoint / "model.safetensors")

    _train(killed, env, "--resume_from_checkpoint", str(checkpoint))

    # The checkpoint it resumed from is what the uninterrupted run saved at step 10 ...
    at_10 = load_file(full / "checkpoint-10" / "model.safetensors")
    assert all(torch.equal(at_10[k], before_resume[k]) for k in at_10)
    # ... and every later checkpoint, and the final (best) model, are bit for bit the uninterrupted run's.
    for name in ("checkpoint-20", "checkpoint-30", "checkpoint-40", "."):
        expected, got = load_file(full / name / "model.safetensors"), load_file(killed / name / "model.safetensors")
        assert expected.keys() == got.keys()
        assert all(torch.equal(expected[k], got[k]) for k in expected), name
    # Same per-step losses, gradient norms, learning rates and evaluations, and the same test scores.
    full_state, resumed_state = _state(full / "checkpoint-40"), _state(killed / "checkpoint-40")
    assert _strip(resumed_state["log_history"]) == _strip(full_state["log_history"])
    assert resumed_state["best_metric"] == full_state["best_metric"]
    full_results = json.loads((full / "results.json").read_text())
    resumed_results = json.loads((killed / "results.json").read_text())
    assert _strip(resumed_results["test"]) == _strip(full_results["test"])
    assert resumed_results["examples"] == full_results["examples"]
    # Trainer's summary train_loss averages only the steps trained since the resume (its documented
    # num_steps_trained), so that one number differs; the per-step losses compared above do not.
    full_train, resumed_train = _strip(full_results["train"]), _strip(resumed_results["train"])
    # The validation curve is this process's: the resumed run has the evaluations after the checkpoint, the same ones.
    resumed_curve = resumed_train.pop("validation_curve")
    assert resumed_curve == full_train.pop("validation_curve")[-len(resumed_curve) :] and resumed_curve
    losses = [entry["loss"] for entry in full_state["log_history"] if "loss" in entry]
    assert full_train.pop("training_loss") == pytest.approx(sum(losses) / 40, rel=1e-6)
    assert resumed_train.pop("training_loss") == pytest.approx(sum(losses[10:]) / 30, rel=1e-6)
    assert resumed_train == full_train


def _train_main(*argv: str) -> None:
    """examples/g2p/train_g2p.py's main() in this process: fast, for runs that must stop before any training."""
    load_script(TRAIN_G2P).main(list(argv))


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--keep_stress", "true"], r"vocab_size=72 there but 102 here"),  # the tokenizer with stress has 30 more
        (["--d_model", "32"], r"d_model=16 there but 32 here"),
        (["--decoder_layers", "2", "--num_heads", "4"], r"decoder_layers=1 there but 2 here; num_heads=2 there but 4"),
    ],
)
def test_resuming_with_another_tokenizer_or_model_size_stops_before_training(uninterrupted, tmp_path, flags, message):
    checkpoint = uninterrupted / "checkpoint-10"
    before = {f.name: f.stat().st_mtime_ns for f in uninterrupted.rglob("*")}
    with pytest.raises(SystemExit, match=rf"^{checkpoint} was written by another setup: {message}.*Resume with the "):
        _train_main("--output_dir", str(uninterrupted), *TINY_RUN, *flags, "--resume_from_checkpoint", str(checkpoint))
    assert {f.name: f.stat().st_mtime_ns for f in uninterrupted.rglob("*")} == before  # nothing written


@pytest.mark.parametrize("lost", ["optimizer.pt", "rng_state.pth", "trainer_state.json", "config.json"])
def test_resuming_from_an_incomplete_checkpoint_names_the_missing_file(uninterrupted, tmp_path, lost):
    checkpoint = _copy(uninterrupted / "checkpoint-10", tmp_path / "checkpoint-10")
    (checkpoint / lost).unlink()
    with pytest.raises(SystemExit, match=rf"^{checkpoint} cannot resume training: it has no {lost}"):
        _train_main("--output_dir", str(tmp_path), *TINY_RUN, "--resume_from_checkpoint", str(checkpoint))
