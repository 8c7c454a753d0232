"""Training on CMUdict G2P: the recipe parsing, a tiny end-to-end run of examples/g2p/train_g2p.py, overfitting with the
Seq2SeqTrainer, and a 2-process DDP run (gloo on CPU). Small models and a few steps: seconds each."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, EXAMPLES, ROOT, load_script
from huggingface_hub import ModelCard
from limits import TIMEOUT
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)

from hf_minimal import MinimalTransformerConfig, MinimalTransformerForConditionalGeneration, g2p

SCRIPT = EXAMPLES / "g2p" / "train_g2p.py"
CALLBACKS = EXAMPLES / "g2p" / "g2p_callbacks.py"
TINY = ["--d_model", "32", "--d_ff", "64", "--num_heads", "2", "--encoder_layers", "1", "--decoder_layers", "1"]
SMALL_RUN = [
    *TINY,
    *("--max_train_samples", "64", "--max_eval_samples", "16", "--max_test_samples", "16"),
    *("--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "16", "--disable_tqdm", "true"),
]


def run(command: list[str], timeout: int = TIMEOUT) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-6000:]}"
    return result


def assert_loadable(output_dir: Path) -> tuple:
    tokenizer = AutoTokenizer.from_pretrained(output_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(output_dir)
    assert isinstance(model, MinimalTransformerForConditionalGeneration)
    assert model.config.vocab_size == len(tokenizer) == 72
    assert (model.config.pad_token_id, model.config.decoder_start_token_id, model.config.eos_token_id) == (
        tokenizer.pad_token_id,
        tokenizer.bos_token_id,
        tokenizer.eos_token_id,
    )
    assert model.lm_head.weight is model.get_input_embeddings().weight  # the three-way tie survives saving
    outputs = g2p.transcribe(model, tokenizer, ["hello", "Zyzzyva"])
    assert all(set(text.split()) <= set(tokenizer.get_vocab()) for text in outputs)
    return model, tokenizer


def test_recipe_json_then_command_line_overrides():
    script = load_script(SCRIPT)
    flags = ["--max_steps", "7", "--d_model", "64", "--use_cpu", "false"]
    model_args, g2p_args, args, recipe = script.parse_args(flags)
    defaults = json.loads((CONFIGS / "recipes" / "g2p-cpu.json").read_text())
    assert args.max_steps == 7 and model_args.d_model == 64 and args.use_cpu is False  # the flags win
    assert args.learning_rate == defaults["learning_rate"] and args.lr_scheduler_type == "inverse_sqrt"
    assert (args.adam_beta1, args.adam_beta2, args.adam_epsilon) == (0.9, 0.98, 1e-9)
    assert args.label_smoothing_factor == 0.1 and args.predict_with_generate
    assert args.train_sampling_strategy == "group_by_length" and args.load_best_model_at_end
    assert model_args.encoder_layers == defaults["encoder_layers"] and g2p_args.keep_stress is False
    assert recipe["max_steps"] == 7 and recipe["d_model"] == 64 and recipe["use_cpu"] is False
    assert recipe["learning_rate"] == defaults["learning_rate"]
    assert set(recipe) == set(defaults) | {"max_steps", "d_model", "use_cpu"}


def test_both_recipes_parse_and_unknown_fields_are_named(tmp_path):
    script = load_script(SCRIPT)
    recipes = (("g2p-cpu.json", []), ("g2p-gpu.json", ["--bf16", "false"]), ("g2p-finetune-stress.json", []))
    for name, flags in recipes:  # no bf16 GPU here
        _, _, args, recipe = script.parse_args([str(CONFIGS / "recipes" / name), *flags])
        assert args.lr_scheduler_type == "inverse_sqrt" and args.label_smoothing_factor == 0.1
        assert set(recipe) == set(json.loads((CONFIGS / "recipes" / name).read_text()))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"max_steps": 3, "learning_rat": 0.1}))
    with pytest.raises(SystemExit, match="learning_rat"):
        script.parse_args([str(bad)])


@pytest.mark.parametrize("cooldown", [0.0, 0.25, 1.0])
def test_budget_cooldown_scales_the_inverse_sqrt_schedule(cooldown):
    """lr(step) = peak · inverse_sqrt(step) · clamp((1 - spent) / cooldown, 0, 1), where spent is the larger of
    elapsed/budget and step/max_steps; training stops when the time is up."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState, get_inverse_sqrt_schedule

    callbacks = load_script(CALLBACKS)
    peak, warmup, seconds, max_steps = 2e-3, 4, 100.0, 200
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    scheduler = get_inverse_sqrt_schedule(optimizer, num_warmup_steps=warmup)
    budget = callbacks.TimeBudget(seconds / 60)
    cool_down = callbacks.CoolDown(budget, cooldown)
    args = SimpleNamespace(device="cpu", eval_strategy="steps", save_strategy="steps")
    state, control = TrainerState(max_steps=max_steps), TrainerControl()
    budget.on_train_begin(args, state, control)
    cool_down.on_train_begin(args, state, control, lr_scheduler=scheduler)
    # Time runs out first, then (elapsed 10 s at step 190) the step budget does.
    for step, elapsed in [(10, 10.0), (20, 70.0), (30, 80.0), (40, 95.0), (50, 99.9), (60, 100.5), (190, 10.0)]:
        budget.start = callbacks.time.time() - elapsed  # as if `elapsed` seconds had passed
        state.global_step = step
        budget.on_step_end(args, state, control)
        while scheduler.last_epoch < step:
            optimizer.step()  # no gradient: only keeps torch's step-order check quiet
            scheduler.step()
        spent = max(elapsed / seconds, step / max_steps)
        factor = 1.0 if cooldown == 0 else min(1.0, max(0.0, (1 - spent) / cooldown))
        expected = peak * (warmup / step) ** 0.5 * factor
        assert optimizer.param_groups[0]["lr"] == pytest.approx(expected, rel=1e-3, abs=1e-12), (step, elapsed)
        assert control.should_training_stop == (elapsed >= seconds)
        control.should_training_stop = False
    with pytest.raises(ValueError, match="cooldown_fraction"):
        callbacks.CoolDown(budget, 1.5)


@pytest.mark.parametrize("load, warns", [(0.3, False), (5.0, True)])
def test_budget_reports_speed_after_a_minute_and_warns_under_load(monkeypatch, capsys, load, warns):
    """One minute into training the budget prints steps/s, warns when the load average exceeds the cores (other
    work), and keeps both for results.json; the budget's clock starts at the job's start, not at train()."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    callbacks = load_script(CALLBACKS)
    monkeypatch.setattr(callbacks.os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(callbacks.os, "cpu_count", lambda: 2)
    job_start = callbacks.time.time() - 30.0  # imports and data loading took 30 s
    budget, log = callbacks.TimeBudget(1.0, start=job_start), callbacks.TrainingLog(job_start)
    args = SimpleNamespace(device="cpu", eval_strategy="steps", save_strategy="steps", world_size=1)
    state, control = TrainerState(max_steps=10_000), TrainerControl()
    for callback in (budget, log):
        callback.on_train_begin(args, state, control)
    state.global_step = 10
    for callback in (budget, log):
        callback.on_step_end(args, state, control)
    assert log.speed == {} and not control.should_training_stop  # 30 s in: no report yet, budget not spent
    budget.start -= 65.0  # 65 s later: training has run 65 s, the job 95 s, past its 60 s budget
    log.train_start -= 65.0
    state.global_step = 400
    for callback in (budget, log):
        callback.on_step_end(args, state, control)
    assert control.should_training_stop
    assert log.speed["load_average_first_minute"] == load
    assert log.speed["steps_per_second_first_minute"] == pytest.approx(400 / 65, rel=0.05)
    printed = capsys.readouterr().out
    assert "steps/s over the first minute" in printed
    assert ("WARNING: load average" in printed) == warns


def test_shared_cores_drops_to_one_thread_under_load_and_takes_the_threads_back(monkeypatch, capsys):
    """With other work on the cores (load > cores + 0.5) a one-process CPU run goes single-threaded, and back to
    its threads once the load is below cores - 0.5; in between nothing changes; every switch is recorded and
    printed; the end of training restores the threads; DDP processes (already single-threaded) are left alone."""
    from types import SimpleNamespace

    from transformers import TrainerControl, TrainerState

    callbacks = load_script(CALLBACKS)
    load = [2.0]
    monkeypatch.setattr(callbacks.os, "getloadavg", lambda: (load[0], load[0], load[0]))
    monkeypatch.setattr(callbacks.os, "cpu_count", lambda: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        cores = callbacks.SharedCores(start=callbacks.time.time())
        args, control = SimpleNamespace(device="cpu", world_size=1), TrainerControl()
        state = TrainerState()
        cores.on_train_begin(args, state, control)
        for step, load[0], threads in [
            (10, 2.0, 2),
            (15, 3.5, 2),
            (20, 3.5, 1),
            (30, 1.9, 1),
            (40, 1.2, 2),
            (50, 1.2, 2),
        ]:
            state.global_step = step  # step 15: the load is read every 10 steps only
            cores.on_step_end(args, state, control)
            assert torch.get_num_threads() == threads, step
        assert [(s["step"], s["threads"], s["load_average"]) for s in cores.switches] == [(20, 1, 3.5), (40, 2, 1.2)]
        printed = capsys.readouterr().out
        assert "step 20: load average 3.5 on 2 cores, other work is running: 1 torch thread(s) now" in printed
        assert "step 40: load average 1.2 on 2 cores, the cores are free again: 2 torch thread(s) now" in printed
        load[0], state.global_step = 3.5, 60
        cores.on_step_end(args, state, control)
        cores.on_train_end(args, state, control)
        assert torch.get_num_threads() == 2 and len(cores.switches) == 3
        ddp = SimpleNamespace(device="cpu", world_size=2)
        cores.on_train_begin(ddp, state, control)
        cores.on_step_end(ddp, state, control)
        assert torch.get_num_threads() == 2 and len(cores.switches) == 3
    finally:
        torch.set_num_threads(before)


def test_snapshots_keep_the_last_n_and_average_to_their_float64_mean(tmp_path):
    """Snapshots every `every` steps, the last `keep` on disk; average_weights is their mean (a float64 reference)."""
    from types import SimpleNamespace

    callbacks = load_script(CALLBACKS)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    snapshots = callbacks.Snapshots(tmp_path / "snapshots", every=5, keep=3)
    state, written = SimpleNamespace(global_step=0, is_world_process_zero=True), {}
    for step in range(1, 31):
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn_like(parameter))
        state.global_step = step
        snapshots.on_step_end(None, state, None, model=model)
        written[step] = {name: p.detach().double().clone() for name, p in model.named_parameters()}
    assert [path.name for path in snapshots.paths()] == [f"step-{s}.safetensors" for s in (20, 25, 30)]
    average = callbacks.average_weights(snapshots.paths())
    for name in ("weight", "bias"):
        expected = sum(written[step][name] for step in (20, 25, 30)) / 3
        torch.testing.assert_close(average[name].double(), expected, rtol=0, atol=1e-6)
        assert average[name].dtype == torch.float32
    state.is_world_process_zero = False  # under DDP only rank 0 writes
    state.global_step = 35
    snapshots.on_step_end(None, state, None, model=model)
    assert len(snapshots.paths()) == 3 and snapshots.paths()[-1].name == "step-30.safetensors"
    with pytest.raises(ValueError, match="average_checkpoints"):
        callbacks.Snapshots(tmp_path, every=5, keep=1)


def test_keep_better_average_loads_the_weights_with_the_lowest_validation_wer(tmp_path, capsys):
    """The trained weights and the averages of the last 4 and 2 snapshots are scored; the lowest WER wins and is what
    the model holds afterwards; on a tie the trained weights stay."""
    from types import SimpleNamespace

    script = load_script(SCRIPT)
    model = torch.nn.Linear(1, 1, bias=False)

    class Trainer:  # evaluate() scores the weight itself: the lower, the better
        accelerator = SimpleNamespace(wait_for_everyone=lambda: None)

        def __init__(self):
            self.model = model

        def evaluate(self, metric_key_prefix):
            return {f"{metric_key_prefix}_wer": float(model.weight)}

    snapshots = script.Snapshots(tmp_path, every=1, keep=4)
    for step, value in enumerate([10.0, 20.0, 0.0, 4.0], start=1):  # last 4: 8.5, last 2: 2.0
        with torch.no_grad():
            model.weight.fill_(value)
        snapshots.on_step_end(None, SimpleNamespace(global_step=step, is_world_process_zero=True), None, model=model)
    with torch.no_grad():
        model.weight.fill_(3.0)  # the trained weights
    record = script.keep_better_average(Trainer(), snapshots)
    assert record == {
        "snapshot_steps": [1, 2, 3, 4],
        "validation_wer": {"trained": 3.0, "last 4": 8.5, "last 2": 2.0},
        "chosen": "last 2",
    }
    assert float(model.weight) == 2.0
    assert "validation WER of the last 2 weights: 2.00" in capsys.readouterr().out
    record = script.keep_better_average(Trainer(), snapshots)  # now the trained weights tie with "last 2"
    assert record["chosen"] == "trained" and float(model.weight) == 2.0


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny end-to-end run of examples/g2p/train_g2p.py (the default recipe, shrunk by flags)."""
    out = tmp_path_factory.mktemp("g2p") / "run"
    # A 0.001-minute budget stops training at the first check (step 10), which must still evaluate and save.
    budget = ["--max_steps", "500", "--max_train_minutes", "0.001", "--eval_steps", "5", "--save_steps", "5"]
    budget += ["--average_checkpoints", "2", "--average_every_steps", "5"]  # snapshots at steps 5 and 10
    run([sys.executable, str(SCRIPT), *SMALL_RUN, *budget, "--test_num_beams", "1", "2", "--output_dir", str(out)])
    return out, json.loads((out / "results.json").read_text())


def test_end_to_end_run_writes_results_and_a_model_card(trained):
    out, results = trained
    assert results["train"]["global_step"] == 10
    assert results["train"]["best_validation_wer"] is not None
    curve = results["train"]["validation_curve"]  # time to quality: one point per evaluation
    assert [point["step"] for point in curve] == [5, 10]  # eval_steps 5, then the stop at step 10
    assert 0 < curve[0]["seconds"] <= curve[1]["seconds"] < results["job_seconds"]  # 0.1 s resolution
    assert min(point["wer"] for point in curve) == results["train"]["best_validation_wer"]
    assert results["train"]["thread_switches"] == []  # one thread (OMP_NUM_THREADS=1): nothing to switch
    average = results["train"]["checkpoint_average"]
    assert average["snapshot_steps"] == [5, 10] and set(average["validation_wer"]) == {"trained", "last 2"}
    assert average["validation_wer"]["trained"] == results["train"]["best_validation_wer"]  # the best checkpoint
    assert results["keep_stress"] is False and results["split_words"]["test"] > 6000
    assert results["recipe"]["max_steps"] == 500 and results["recipe"]["d_model"] == 32
    assert results["recipe"]["label_smoothing_factor"] == 0.1  # from configs/recipes/g2p-cpu.json, the default recipe
    for key in ("beam1", "beam2"):
        scores = results["test"][key]
        assert scores["words"] == 16 and 0 <= scores["wer"] <= 100 and scores["per"] >= 0
    assert "huggingface" in results["examples"] and results["examples"]["huggingface"]["lexicon"] is None
    assert results["examples"]["hello"]["lexicon"] == ["HH AH L OW", "HH EH L OW"]

    card = ModelCard.load(out / "README.md")
    assert card.data.library_name == "transformers" and "cmudict" in card.data.tags
    assert {r.metric_type for r in card.data.eval_results} == {"wer", "per"}
    assert "AutoModelForSeq2SeqLM.from_pretrained" in card.text and "SHA-256" in card.text
    assert "Section 6.1" in card.text and f"{average['validation_wer']['trained']:.2f}" in card.text
    assert (out / "tokenizer.json").is_file() and (out / "modeling_minimal_transformer.py").is_file()


def test_end_to_end_run_saves_the_weights_the_checkpoint_average_chose(trained):
    out, results = trained
    callbacks = load_script(CALLBACKS)
    average = results["train"]["checkpoint_average"]
    if average["chosen"] == "last 2":
        expected = callbacks.average_weights(sorted((out / "snapshots").glob("step-*.safetensors")))
    else:
        best = AutoModelForSeq2SeqLM.from_pretrained(results["train"]["best_checkpoint"])
        expected = dict(best.named_parameters())
    saved = dict(AutoModelForSeq2SeqLM.from_pretrained(out).named_parameters())
    assert saved.keys() == expected.keys()
    for name, parameter in saved.items():
        torch.testing.assert_close(parameter, expected[name], rtol=0, atol=0, msg=name)


def test_end_to_end_run_reloads_through_the_auto_classes(trained):
    out, results = trained
    model, tokenizer = assert_loadable(out)
    sample = g2p.load_cmudict()["test"].shuffle(seed=0).select(range(16))  # the words the script scored
    assert g2p.evaluate_split(model, tokenizer, sample)["wer"] == pytest.approx(results["test"]["beam1"]["wer"])


def test_evaluate_script_prints_the_same_scores(trained, capsys):
    out, results = trained
    assert (
        load_script(EXAMPLES / "g2p" / "evaluate_g2p.py").main([str(out), "--max_samples", "16", "--num_beams", "2"])
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "test" and report["keep_stress"] is False and report["words"] == 16
    assert (report["per"], report["wer"]) == pytest.approx(
        (results["test"]["beam2"]["per"], results["test"]["beam2"]["wer"])
    )


def test_predict_script_handles_odd_input(trained, capsys):
    out, _ = trained
    predict = load_script(EXAMPLES / "g2p" / "predict_g2p.py").main
    assert predict([str(out), "Hello", "new york", "", "café"]) == 0
    captured = capsys.readouterr()
    lines = [line.split(maxsplit=1) for line in captured.out.splitlines()]
    assert [line[0] for line in lines] == ["hello", "new", "york", "café"]
    assert "'café' has characters outside" in captured.err and "(é)" in captured.err
    assert predict([str(out), "", "  "]) == 2
    assert "No words given" in capsys.readouterr().err
    assert predict([str(out.parent / "missing"), "hello"]) == 1
    assert "No model folder" in capsys.readouterr().err


def test_trainer_overfits_200_words_to_zero_wer(tmp_path):
    torch.manual_seed(0)
    tokenizer = g2p.build_tokenizer()
    train = g2p.load_cmudict()["train"].shuffle(seed=0)
    words = train.filter(lambda row: len(row["pronunciations"]) == 1).select(range(200))
    config = MinimalTransformerConfig(
        vocab_size=len(tokenizer), d_model=64, encoder_layers=2, decoder_layers=2, num_heads=4, d_ff=256, dropout=0.0
    )
    model = AutoModelForSeq2SeqLM.from_config(config)
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=800,  # WER 0 from about step 200-600, as the seed draws the initial weights
        per_device_train_batch_size=50,
        learning_rate=1.5e-3,
        lr_scheduler_type="constant",
        adam_beta2=0.98,
        adam_epsilon=1e-9,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=g2p.tokenize_split(words, tokenizer),
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: one thread is as fast, and far faster when the cores are shared
    try:
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    scores = g2p.evaluate_split(model, tokenizer, words)
    assert scores == {"per": 0.0, "wer": 0.0, "words": 200, "pronunciations": 200}


def test_two_process_ddp_run_exits_cleanly_and_saves_a_loadable_model(tmp_path):
    out = tmp_path / "ddp"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    steps = ["--max_steps", "4", "--eval_steps", "2", "--save_steps", "2", "--test_num_beams", "1"]
    result = run([*torchrun, str(SCRIPT), *SMALL_RUN, *steps, "--output_dir", str(out)])
    assert "terminate called" not in result.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["train"]["world_size"] == 2 and results["train"]["global_step"] == 4
    assert_loadable(out)
