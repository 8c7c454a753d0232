#!/usr/bin/env python
"""Train the "Attention Is All You Need" Transformer for grapheme-to-phoneme on CMUdict or your own lexicon file,
from scratch or fine-tuned.

    python examples/g2p/train_g2p.py                          # configs/recipes/g2p-cpu.json: a thread per core
    python examples/g2p/train_g2p.py --train_file de.tsv --output_dir outputs/g2p-de   # any lexicon, any language
    python examples/g2p/train_g2p.py configs/recipes/g2p-gpu.json                         # one GPU
    python examples/g2p/train_g2p.py configs/recipes/g2p-finetune-stress.json             # outputs/g2p-cpu -> stress
    python examples/g2p/train_g2p.py configs/recipes/g2p-finetune-stress.json --model_name_or_path user/g2p  # Hub
    python examples/g2p/train_g2p.py --max_steps 20 --output_dir /tmp/x                   # any field overridden
    torchrun --nproc_per_node 2 examples/g2p/train_g2p.py --per_device_train_batch_size 32   # DDP (gloo on CPU)

The recipe (a JSON file of ModelArguments, G2PArguments and Seq2SeqTrainingArguments fields) gives the
defaults; command-line flags override them. The output folder ends up with the best checkpoint (by validation
WER), its tokenizer, results.json (test PER/WER, greedy and beam search) and a model card (README.md).
"""

import json
import os
import sys
import time
from pathlib import Path

import torch
from g2p_arguments import SIZE_FIELDS, G2PArguments, ModelArguments, parse_args
from g2p_callbacks import (
    CoolDown,
    SharedCores,
    Snapshots,
    TimeBudget,
    TrainingLog,
    average_weights,
    hardware,
    load_average,
    process_start_time,
)
from g2p_report import describe_data, score_saved_model, write_model_card
from huggingface_hub import HfApi
from transformers import (
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    Seq2SeqTrainer,
    set_seed,
)

from hf_minimal import MinimalTransformerConfig, g2p, pairs

PICKLE_SUFFIXES = ("bin", "pt", "pth", "pkl", "pickle", "ckpt", "joblib")


def compute_metrics_fn(tokenizer, references: dict[str, list[str]]):
    """compute_metrics for Seq2SeqTrainer: PER/WER of the generated phones against every reference.

    The words are read back from the inputs, because the length-grouped sampler reorders the evaluation set.
    """

    def compute_metrics(prediction) -> dict[str, float]:
        words = [text.replace(" ", "") for text in pairs.decode_predictions(tokenizer, prediction.inputs)]
        hypotheses = pairs.decode_predictions(tokenizer, prediction.predictions)
        return g2p.per_wer(hypotheses, [references[word] for word in words])

    return compute_metrics


def load_data(g2p_args: G2PArguments):
    """The train/validation/test splits: of --train_file (g2p.load_lexicon), else of CMUdict (the same code path)."""
    if not g2p_args.train_file:
        if g2p_args.validation_file or g2p_args.test_file:
            raise SystemExit("--validation_file and --test_file go with --train_file (CMUdict is split by word hash).")
        return g2p.load_cmudict(keep_stress=g2p_args.keep_stress)
    if g2p_args.keep_stress:
        raise SystemExit("--keep_stress is for CMUdict: a lexicon file's phones are used as written.")
    try:
        return g2p.load_lexicon(g2p_args.train_file, g2p_args.validation_file, g2p_args.test_file, g2p_args.lowercase)
    except ValueError as error:  # LexiconError: the file, the line and the fix
        raise SystemExit(str(error)) from None


def check_vocabulary(tokenizer, data, source: str) -> None:
    """Fine-tuning on a lexicon: every character and phone of its training split must be a token of the model."""
    graphemes, phones = g2p.lexicon_symbols(data["train"])
    missing = sorted((graphemes | phones) - set(tokenizer.get_vocab()))
    if missing:
        raise SystemExit(
            f"{source} has no token for {len(missing)} of the lexicon's characters and phones "
            f"({' '.join(missing[:20])}): train a new model on this lexicon (drop --model_name_or_path)."
        )


def check_resume(checkpoint: str, expected: dict) -> None:
    """Stop before any work if `checkpoint` cannot resume this run exactly: a file Trainer needs is missing (a
    model-only checkpoint resumes with a fresh optimizer), or it was written with another tokenizer or model size."""
    needed = ("config.json", "model.safetensors", "trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth")
    for name in needed:
        if not Path(checkpoint, name).is_file():
            raise SystemExit(
                f"{checkpoint} cannot resume training: it has no {name} (killed while saving, or saved with "
                f"--save_only_model true). Resume from an earlier complete checkpoint-N folder."
            )
    saved = json.loads(Path(checkpoint, "config.json").read_text())
    changed = [
        f"{key}={saved.get(key)!r} there but {value!r} here"
        for key, value in expected.items()
        if saved.get(key) != value
    ]
    if changed:
        raise SystemExit(
            f"{checkpoint} was written by another setup: {'; '.join(changed)}. Resume with the flags that wrote it "
            f"(vocab_size follows --keep_stress)."
        )


def load_base_model(model_args: ModelArguments, keep_stress: bool | None, recipe: dict) -> tuple:
    """(model, tokenizer, base) to fine-tune: the trained model and its tokenizer, the vocabulary grown to the task's
    phones (g2p.grow_vocabulary: old ids keep their meaning, new stressed vowels start from their base vowel), and
    what results.json and the model card record of the base."""
    source = model_args.model_name_or_path
    overrides = {"dropout": model_args.dropout} if "dropout" in recipe else {}  # a training choice, not a size
    model, tokenizer = g2p.load_model(source, "cpu", **overrides)
    contradicting = [
        f"{name}={recipe[name]} (the model has {getattr(model.config, name)})"
        for name in SIZE_FIELDS
        if name in recipe and recipe[name] != getattr(model.config, name)
    ]
    if contradicting:
        raise SystemExit(
            f"--model_name_or_path {source}: {', '.join(contradicting)}. A loaded model keeps its size: drop these "
            f"from the command line and the recipe (configs/recipes/g2p-finetune-stress.json sets none)."
        )
    base_vocab = len(tokenizer)
    if keep_stress is not None:  # CMUdict; a lexicon's symbols must already be tokens (check_vocabulary)
        tokenizer = g2p.grow_vocabulary(model, tokenizer, keep_stress=keep_stress)
    results = Path(source, "results.json")
    base = {
        "name_or_path": source,
        "is_hub_id": not Path(source).expanduser().is_dir(),
        "model_code": type(model).__module__,
        "num_parameters": model.num_parameters(),
        "vocab_size": base_vocab,
        "new_tokens": len(tokenizer) - base_vocab,
        "test": json.loads(results.read_text()).get("test") if results.is_file() else None,
    }
    print(f"Fine-tuning {source} ({type(model).__module__}); vocabulary {base_vocab} -> {len(tokenizer)} tokens")
    return model.train(), tokenizer, base


def model_and_tokenizer(model_args: ModelArguments, g2p_args: G2PArguments, args, recipe: dict, data) -> tuple:
    """(model, tokenizer, base): the model to fine-tune with its tokenizer, or a new model of the recipe's size with
    a tokenizer built from the data; `base` records the fine-tuned model (None when training from scratch)."""
    if model_args.model_name_or_path:
        stress = None if g2p_args.train_file else g2p_args.keep_stress
        model, tokenizer, base = load_base_model(model_args, stress, recipe)
        if g2p_args.train_file:
            check_vocabulary(tokenizer, data, model_args.model_name_or_path)
        size = {name: getattr(model.config, name) for name in (*SIZE_FIELDS, "dropout")}
    else:
        tokenizer, base = g2p.tokenizer_for_splits(data, lowercase=g2p_args.lowercase), None
        size = {name: getattr(model_args, name) for name in (*SIZE_FIELDS, "dropout")}
    if args.resume_from_checkpoint:
        check_resume(args.resume_from_checkpoint, {"vocab_size": len(tokenizer), **size})
    if base is None:
        config = MinimalTransformerConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.bos_token_id,
            max_position_embeddings=tokenizer.model_max_length,
            **size,
        )
        model = AutoModelForSeq2SeqLM.from_config(config)
    model.generation_config.max_length = args.generation_max_length or 64  # for users' plain `generate()` calls
    return model, tokenizer, base


def training_record(train_output, seconds: float, trainer, budget: TimeBudget, log: TrainingLog, cores) -> dict:
    """results.json's "train": steps, time, speed, the load beside the run and the time-to-quality curve."""
    return {
        "global_step": train_output.global_step,
        "seconds": round(seconds, 1),
        "steps_per_second": round(train_output.global_step / seconds, 2),
        "training_loss": train_output.training_loss,
        "best_validation_wer": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "world_size": trainer.args.world_size,
        **log.speed,
        "load_average_at_end": load_average(),
        "job_seconds_before_test": round(time.time() - budget.start, 1),
        "validation_curve": log.curve,
        "thread_switches": cores.switches,
    }


def keep_better_average(trainer, snapshots: Snapshots) -> dict:
    """Checkpoint averaging (Section 6.1): scores the averages of the last N, N/2, ... 2 snapshots on the validation
    words and keeps the weights with the lowest validation WER, the trained model's own included (the best
    checkpoint under load_best_model_at_end). Returns what was tried, for results.json."""
    trainer.accelerator.wait_for_everyone()  # rank 0 wrote the snapshots
    model, paths = trainer.model, snapshots.paths()
    candidates = {"trained": {name: p.detach().clone() for name, p in model.named_parameters()}}
    count = min(snapshots.keep, len(paths))
    while count >= 2:
        candidates[f"last {count}"] = average_weights(paths[-count:])
        count //= 2
    scores = {}
    for label, weights in candidates.items():
        load_parameters(model, weights)
        scores[label] = trainer.evaluate(metric_key_prefix="average")["average_wer"]
        print(f"validation WER of the {label} weights: {scores[label]:.2f}")
    chosen = min(scores, key=scores.get)  # ties keep the trained weights (first)
    load_parameters(model, candidates[chosen])
    return {"snapshot_steps": [snapshots.step(path) for path in paths], "validation_wer": scores, "chosen": chosen}


def load_parameters(model, weights: dict) -> None:
    """Copies `weights` (parameter name -> tensor, as named_parameters() names them) into the model."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(weights[name])


def push_card(args, trainer) -> None:
    """save_model() pushed the weights before the test scores existed: add our card and results.json."""
    commit = HfApi(token=args.hub_token).upload_folder(
        repo_id=trainer.hub_model_id,
        folder_path=args.output_dir,
        allow_patterns=["README.md", "results.json"],
        revision=args.hub_revision,
        commit_message="Model card and test results",
    )
    print(f"Pushed to {commit.commit_url}")


def main(argv: list[str] | None = None) -> None:
    model_args, g2p_args, args, recipe = parse_args(sys.argv[1:] if argv is None else argv)
    budget = TimeBudget(g2p_args.max_train_minutes, start=process_start_time())
    log, cores = TrainingLog(budget.start), SharedCores(budget.start)
    # The metric reads the words back from the inputs (see compute_metrics_fn).
    args.include_for_metrics = sorted({*args.include_for_metrics, "inputs"})
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.world_size == 1:
        raise SystemExit("Launched with several processes, but transformers set up no DDP: on CPU pass --use_cpu true.")
    set_seed(args.seed)

    data = load_data(g2p_args)
    model, tokenizer, base = model_and_tokenizer(model_args, g2p_args, args, recipe, data)
    train_words = g2p.sample_split(data["train"], g2p_args.max_train_samples, args.seed)
    eval_words = g2p.sample_split(data["validation"], g2p_args.max_eval_samples, args.seed)
    references = dict(zip(eval_words["word"], eval_words["pronunciations"], strict=True))
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        # In memory, nothing cached: under DDP every rank tokenises its own copy at the same time.
        train_dataset=g2p.tokenize_split(train_words, tokenizer),
        eval_dataset=g2p.tokenize_split(eval_words, tokenizer, every_pronunciation=False),
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(tokenizer, references),
        callbacks=[budget, CoolDown(budget, g2p_args.cooldown_fraction), log, cores],
    )
    snapshots = None
    if g2p_args.average_checkpoints:
        snapshots = Snapshots(
            Path(args.output_dir, "snapshots"), g2p_args.average_every_steps, g2p_args.average_checkpoints
        )
        trainer.add_callback(snapshots)
    if args.push_to_hub and trainer.is_world_process_zero():
        # Trainer writes its arguments as a pickle (training_args.bin) into the folder it uploads; the Hub applies
        # this .gitignore to every upload, so nothing pickled is published, nor the averaging's weight snapshots.
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        ignored = "".join(f"*.{ext}\n" for ext in PICKLE_SUFFIXES) + "snapshots/\n"
        Path(args.output_dir, ".gitignore").write_text(ignored)
    print(f"{model.num_parameters():,} parameters; {len(trainer.train_dataset):,} training pairs; {hardware()}")
    start = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    train_record = training_record(train_output, time.perf_counter() - start, trainer, budget, log, cores)
    if snapshots is not None:
        train_record["checkpoint_average"] = keep_better_average(trainer, snapshots)
    trainer.save_model()  # the best checkpoint (load_best_model_at_end) or a better average, with the tokenizer

    if trainer.is_world_process_zero():
        results = {
            "keep_stress": g2p_args.keep_stress,
            "data": describe_data(g2p_args, data),
            "split_words": {name: len(split) for name, split in data.items()},
            "train": train_record,
            "hardware": hardware(),
            "recipe": recipe,
            "base_model": base,
        }
        results.update(score_saved_model(args.output_dir, data, g2p_args, args.per_device_eval_batch_size))
        results["job_seconds"] = round(time.time() - budget.start, 1)  # start-up to test scores, card excluded
        Path(args.output_dir, "results.json").write_text(json.dumps(results, indent=2) + "\n")
        write_model_card(args.output_dir, results)
        print(
            f"Saved model, tokenizer, results.json and README.md in {args.output_dir}; "
            f"{train_output.global_step:,} steps, whole job {results['job_seconds'] / 60:.1f} minutes"
        )
        if args.push_to_hub:
            push_card(args, trainer)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # the other ranks wait for rank 0's test scores
        # Without this every rank aborts at exit ("terminate called without an active exception").
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
