"""The command line of train_g2p.py: a recipe (JSON of ModelArguments, G2PArguments and Seq2SeqTrainingArguments
fields) gives the defaults, flags override them."""

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from transformers import HfArgumentParser, Seq2SeqTrainingArguments

DEFAULT_RECIPE = Path(__file__).resolve().parents[2] / "configs" / "recipes" / "g2p-cpu.json"


@dataclass
class ModelArguments:
    """The Transformer's size (MinimalTransformerConfig fields; the vocabulary comes from the tokenizer), or the
    trained model to fine-tune, whose size and tokenizer come with it."""

    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Fine-tune this trained model (a folder written by this script, or a Hub id) instead of "
            "training a new one; size flags must then agree with it."
        },
    )

    d_model: int = field(default=128, metadata={"help": "Width of the model (the paper's base: 512)."})
    encoder_layers: int = field(default=3, metadata={"help": "Encoder layers N."})
    decoder_layers: int = field(default=3, metadata={"help": "Decoder layers N."})
    num_heads: int = field(default=4, metadata={"help": "Attention heads h."})
    d_ff: int = field(default=512, metadata={"help": "Feed-forward inner width."})
    dropout: float = field(default=0.1, metadata={"help": "P_drop on sublayer outputs and embeddings."})
    norm_first: bool = field(
        default=False, metadata={"help": "Pre-LN (LayerNorm before each sublayer); False is the paper's post-LN."}
    )


# Fixed by a loaded model: its weights were trained for this architecture.
SIZE_FIELDS = ("d_model", "encoder_layers", "decoder_layers", "num_heads", "d_ff", "norm_first")


@dataclass
class G2PArguments:
    """Which data to train and score on (CMUdict, or a lexicon file), and the training time budget."""

    train_file: str | None = field(
        default=None,
        metadata={
            "help": "A pronunciation dictionary to train on instead of CMUdict: CMUdict format (word  P H O N E S, "
            "word(2) variants) or tab-separated (word<TAB>p h o n e s), UTF-8, any language and phone set. Its "
            "words are split 90/5/5 by a hash of the word unless --validation_file / --test_file are given."
        },
    )
    validation_file: str | None = field(default=None, metadata={"help": "The validation split as its own lexicon."})
    test_file: str | None = field(default=None, metadata={"help": "The test split as its own lexicon."})
    lowercase: bool = field(
        default=True, metadata={"help": "Lower-case the lexicon's words (and the words the model reads)."}
    )
    language: str | None = field(
        default=None, metadata={"help": "The lexicon's language (ISO 639-1, e.g. de) for the model card."}
    )
    keep_stress: bool = field(
        default=False, metadata={"help": "CMUdict: keep stress digits (69 phones) instead of 39."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Train on this many words (a seeded sample, every pronunciation)."}
    )
    max_eval_samples: int | None = field(
        default=500, metadata={"help": "Validation words scored at each evaluation during training."}
    )
    max_test_samples: int | None = field(
        default=None, metadata={"help": "Test words scored at the end (default: the whole test split)."}
    )
    max_train_minutes: float | None = field(
        default=None,
        metadata={
            "help": "Stop training this many minutes after the job started (imports, data and tokenisation count), "
            "then evaluate and save; or at max_steps."
        },
    )
    cooldown_fraction: float = field(
        default=0.0,
        metadata={
            "help": "Over this last fraction of the budget (max_train_minutes or max_steps, whichever runs out "
            "first) the learning rate falls linearly to 0 (0: the paper's schedule unchanged)."
        },
    )
    average_checkpoints: int = field(
        default=0,
        metadata={
            "help": "Keep the last N snapshots of the weights (every average_every_steps) and, after training, the "
            "average of the last N, N/2, ... 2 of them if one scores a lower validation WER than the best checkpoint "
            "(the paper averages its last 5 or 20 checkpoints, Section 6.1; 0: off)."
        },
    )
    average_every_steps: int = field(default=1000, metadata={"help": "Steps between the snapshots averaged."})
    test_num_beams: list[int] = field(
        default_factory=lambda: [1, 5], metadata={"help": "Beam widths for the final test scores (1 = greedy)."}
    )


def parse_args(argv: list[str]) -> tuple[ModelArguments, G2PArguments, Seq2SeqTrainingArguments, dict]:
    """The recipe JSON (first argument if it ends in .json, else configs/recipes/g2p-cpu.json) as defaults, then argv.

    Also returns the recipe as run: the fields the JSON or the command line set, with their final values.
    """
    parser = HfArgumentParser((ModelArguments, G2PArguments, Seq2SeqTrainingArguments))
    recipe_path = Path(argv[0]) if argv and argv[0].endswith(".json") else DEFAULT_RECIPE
    if argv and argv[0].endswith(".json"):
        argv = argv[1:]
    recipe = json.loads(recipe_path.read_text())
    known = {f.name for cls in parser.dataclass_types for f in dataclasses.fields(cls)}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise SystemExit(f"{recipe_path}: unknown fields {unknown}; see `python {sys.argv[0]} --help`.")
    parser.set_defaults(**recipe)
    parsed = parser.parse_args_into_dataclasses(args=argv)
    flags = {arg[2:].split("=")[0].replace("-", "_") for arg in argv if arg.startswith("--")}
    flags |= {flag[3:] for flag in flags if flag.startswith("no_")}  # --no_x sets x
    model_args, g2p_args, training_args = parsed
    values = {**dataclasses.asdict(model_args), **dataclasses.asdict(g2p_args), **training_args.to_dict()}
    return model_args, g2p_args, training_args, {name: values[name] for name in sorted(known & (set(recipe) | flags))}
