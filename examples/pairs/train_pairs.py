#!/usr/bin/env python
"""Train a sequence-to-sequence model on JSON-lines pairs with the standard Seq2SeqTrainer, then score it.

Usage (after examples/pairs/new_model.py wrote my-model):
  python examples/pairs/train_pairs.py --model_name_or_path my-model --train_file train.jsonl \\
      --validation_file validation.jsonl --test_file test.jsonl --source_key src --target_key tgt \\
      --output_dir my-model-trained --max_steps 3000 --learning_rate 2e-3

Every Seq2SeqTrainingArguments flag works (--per_device_train_batch_size, --num_train_epochs, --use_cpu, ...). The
defaults differ from the Trainer's only where this task needs it: generation in evaluation (so the metrics are the
decoded outputs'), no external loggers, the paper's Adam betas/epsilon, label smoothing 0.1 and an inverse square
root schedule (Section 5.3-5.4). Metrics: exact match (the share of outputs equal to their reference) and character
error rate (edit distance over reference length, pooled), in percent; the test scores go to results.json.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from datasets import Dataset
from transformers import (
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    HfArgumentParser,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
)
from transformers.trainer_utils import IntervalStrategy

import hf_minimal  # noqa: F401  (registers the Auto classes; a folder from elsewhere also loads with its remote code)
from hf_minimal import pairs
from hf_minimal.g2p import edit_distance

DEFAULTS = dict(
    predict_with_generate=True,
    eval_strategy="steps",
    eval_steps=500,
    save_strategy="steps",
    save_steps=500,
    save_total_limit=1,
    logging_steps=100,
    report_to="none",
    learning_rate=2e-3,
    lr_scheduler_type="inverse_sqrt",
    warmup_steps=400,
    adam_beta1=0.9,
    adam_beta2=0.98,
    adam_epsilon=1e-9,
    label_smoothing_factor=0.1,
    per_device_train_batch_size=64,
    per_device_eval_batch_size=128,
    optim="adamw_torch_fused",
)


@dataclass
class PairsArguments:
    model_name_or_path: str = field(metadata={"help": "a folder from examples/pairs/new_model.py (or any trained one)"})
    train_file: str = field(metadata={"help": "JSON lines of pairs"})
    source_key: str = field(metadata={"help": "the source field"})
    target_key: str = field(metadata={"help": "the target field"})
    validation_file: str | None = field(default=None, metadata={"help": "scored during training"})
    test_file: str | None = field(default=None, metadata={"help": "scored after training (results.json)"})
    max_eval_samples: int | None = field(default=1000, metadata={"help": "validation pairs scored each time"})


def scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Exact match and pooled character error rate, in percent."""
    edits = sum(edit_distance(p, r) for p, r in zip(predictions, references, strict=True))
    return {
        "exact_match": 100.0 * sum(p == r for p, r in zip(predictions, references, strict=True)) / len(references),
        "cer": 100.0 * edits / max(1, sum(map(len, references))),
    }


def load(path: str, args: PairsArguments, tokenizer, limit: int | None = None) -> tuple[list, list, Dataset]:
    """(sources, targets, the tokenised pairs) of a file, its first `limit` pairs."""
    sources, targets = pairs.read_pairs(path, args.source_key, args.target_key)
    sources, targets = sources[:limit], targets[:limit]
    data = Dataset.from_dict({"source": sources, "target": targets})
    tokenized = data.map(
        lambda batch: tokenizer(batch["source"], text_target=batch["target"]),
        batched=True,
        remove_columns=["source", "target"],
    )
    return sources, targets, tokenized


def main(argv: list[str] | None = None) -> int:
    parser = HfArgumentParser((PairsArguments, Seq2SeqTrainingArguments))
    parser.set_defaults(**DEFAULTS)
    args, training = parser.parse_args_into_dataclasses(args=argv)
    try:
        tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
        model = AutoModelForSeq2SeqLM.from_pretrained(args.model_name_or_path)
        train = load(args.train_file, args, tokenizer)[2]
        validation = (
            load(args.validation_file, args, tokenizer, args.max_eval_samples)[2] if args.validation_file else None
        )
    except (OSError, ValueError) as error:
        print(f"Cannot train: {error}", file=sys.stderr)
        return 1
    if validation is None:
        training.eval_strategy = IntervalStrategy.NO  # nothing to evaluate on

    def compute_metrics(prediction) -> dict[str, float]:
        decode = pairs.decode_predictions
        return scores(decode(tokenizer, prediction.predictions), decode(tokenizer, prediction.label_ids))

    trainer = Seq2SeqTrainer(
        model=model,
        args=training,
        train_dataset=train,
        eval_dataset=validation,
        processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        compute_metrics=compute_metrics,
    )
    trainer.train()
    trainer.save_model()
    results = {"train_file": args.train_file, "steps": trainer.state.global_step}
    if args.test_file:
        sources, targets, test = load(args.test_file, args, tokenizer)
        for beams in (1, 5):
            predictions = pairs.decode_predictions(tokenizer, trainer.predict(test, num_beams=beams).predictions)
            results[f"test_beam{beams}"] = {**scores(predictions, targets), "pairs": len(targets)}
            print(f"test, beam {beams}: {results[f'test_beam{beams}']}")
        for source, prediction, target in list(zip(sources, predictions, targets, strict=True))[:5]:
            print(f"  {source!r} -> {prediction!r} (reference {target!r})")
    Path(training.output_dir, "results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
