"""A real Seq2SeqTrainer run: a tiny model learns to reverse digit strings, judged by generation exact match."""

import random

import torch
from conftest import tiny_config
from datasets import Dataset
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

from hf_minimal import MinimalTransformerForConditionalGeneration

PAD, BOS, EOS, FIRST_DIGIT = 0, 1, 2, 3  # digits 0-9 are ids 3..12


def reverse_dataset(n: int, seed: int) -> Dataset:
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        digits = [rng.randrange(10) for _ in range(rng.randint(2, 5))]
        rows.append(
            {
                "input_ids": [FIRST_DIGIT + d for d in digits] + [EOS],
                "attention_mask": [1] * (len(digits) + 1),
                "labels": [FIRST_DIGIT + d for d in reversed(digits)] + [EOS],
            }
        )
    return Dataset.from_list(rows)


class _PadOnlyTokenizer:
    """DataCollatorForSeq2Seq needs only `pad`; a real tokenizer is tested with the G2P job."""

    pad_token_id = PAD
    padding_side = "right"

    def pad(self, features, return_tensors="pt", **kwargs):
        width = max(len(f["input_ids"]) for f in features)
        ids = [f["input_ids"] + [PAD] * (width - len(f["input_ids"])) for f in features]
        mask = [f["attention_mask"] + [0] * (width - len(f["attention_mask"])) for f in features]
        return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask)}


def test_seq2seq_trainer_learns_to_reverse_digits(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_config(vocab_size=13, d_model=64, num_heads=4, d_ff=128, encoder_layers=2, decoder_layers=2)
    model = MinimalTransformerForConditionalGeneration(cfg)
    args = Seq2SeqTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=600,
        per_device_train_batch_size=64,
        learning_rate=3e-3,
        warmup_steps=60,
        lr_scheduler_type="inverse_sqrt",
        adam_beta2=0.98,
        adam_epsilon=1e-9,
        logging_steps=100,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        seed=0,
        use_cpu=True,
    )
    collator = DataCollatorForSeq2Seq(_PadOnlyTokenizer(), model=model)
    trainer = Seq2SeqTrainer(model=model, args=args, train_dataset=reverse_dataset(4000, 0), data_collator=collator)
    result = trainer.train()
    assert result.training_loss < 1.0

    test = reverse_dataset(100, 1)
    batch = collator([{k: row[k] for k in ("input_ids", "attention_mask")} for row in test])
    model.eval()
    generated = model.generate(**batch, max_new_tokens=8)
    correct = 0
    for row, tokens in zip(test, generated.tolist(), strict=True):
        hyp = tokens[1 : tokens.index(EOS) + 1] if EOS in tokens else tokens[1:]
        correct += hyp == row["labels"]
    assert correct >= 98, f"exact match {correct}/100"
