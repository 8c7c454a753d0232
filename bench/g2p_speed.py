"""Transcription speed of a trained G2P model on the whole test split, against MarianMT and Phonetisaurus: words per
second, and how close to the CPU's matrix-multiply peak transcription and a training step run.

    python bench/g2p_speed.py                          # outputs/g2p-cpu (the main job's model), 2 threads
    python bench/g2p_speed.py outputs/g2p-cpu --threads 1 --json speed.json
    python bench/g2p_speed.py outputs/g2p-cpu --phonetisaurus /tmp/phonetisaurus   # + Phonetisaurus (baselines extra)

Rows, all over the same 6,295 test words in the same length-sorted batches of 256, each timed after a warm-up pass
(best of --repeats):
- ours: `g2p.transcribe` greedy (the fast path: `g2p.greedy_decode` on single-threaded workers) and beam 5
  (`generate` on those workers), and plain `model.generate` on the calling thread with the dynamic cache, greedy
  and beam 5 (the references for the outputs);
- MarianMT with our trained weights (the same architecture: post-LN, ReLU, sinusoidal positions, √d_model scaling,
  tied embeddings; our positional table copied in, its logits checked equal to ours): `generate` greedy with the
  dynamic cache, and with a static cache + `torch.compile` (transformers' compiled generation, max_length fixed
  so one graph serves every batch; the compilation is in the warm-up, not the time);
- CTranslate2 (the `serve` extra; skip with --no_ctranslate2): the model exported by
  `hf_minimal.serving.ctranslate2`, float32 and int8 weights, greedy and beam 5, through `Engine.translate`
  (length-sorted batches of 128, its default), with `--threads` single-threaded translator replicas (the cores
  filled), one replica of `--threads` threads, and one replica of one thread (a per-core rate beside Phonetisaurus's);
- Phonetisaurus (with --phonetisaurus DIR and the `baselines` extra): trained on our train split as
  bench/g2p_baselines.py does (kept in DIR and reused), decoding on one core.
Every row's outputs are compared word by word with ours from plain generate at the same beam width. The
arithmetic per word counts the multiply-adds of every linear layer and attention product at the words' real
lengths (2 FLOP each); a training step is the recipe's (a length-grouped batch of 32 pairs, forward + backward +
fused AdamW, on one thread: a per-core figure) and counts 3x its forward FLOPs. The peak is `torch.mm` of
(256 x d_model) @ (d_model x d_ff) on the same threads. Numbers: docs/performance.md.
"""

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
from common import batched_generate, timed
from transformers import CompileConfig, DataCollatorForSeq2Seq
from twins import marian_twin

from hf_minimal import g2p
from hf_minimal.serving.decoding import length_sorted_batches, max_decoding_length


def matmul_peak(d_model: int, d_ff: int, rows: int = 256, seconds: float = 1.0) -> float:
    """GFLOP/s of one (rows x d_model) @ (d_model x d_ff) float32 product, the shape of an FFN layer's."""
    a, b = torch.randn(rows, d_model), torch.randn(d_model, d_ff)
    for _ in range(50):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            a @ b
        n += 100
    return 2 * rows * d_model * d_ff * n / (time.perf_counter() - start) / 1e9


def encoder_macs(config, source: float) -> float:
    """Multiply-adds of the encoder over `source` tokens: per layer the four attention projections and the FFN per
    token, plus QKᵀ and AV over the source's keys."""
    d, f, S = config.d_model, config.d_ff, source
    return config.encoder_layers * (S * (4 * d * d + 2 * d * f) + 2 * S * S * d)


def flops_per_word(config, letters: float, phones: float) -> float:
    """Forward FLOPs to transcribe a word of `letters` source tokens into `phones` target tokens (with </s>)."""
    d, f, S, T = config.d_model, config.d_ff, letters, phones
    encoder = encoder_macs(config, S)
    # Decoder, per target token: self-attention projections, cross-attention q/out (k/v once per source token),
    # the FFN, attention over the cached prefix and the source, and the output projection.
    per_step = 4 * d * d + 2 * d * d + 2 * d * f + 2 * (T / 2) * d + 2 * S * d
    decoder = config.decoder_layers * (T * per_step + S * 2 * d * d) + T * d * config.vocab_size
    return 2 * (encoder + decoder)


def training_step_gflops(model, tokenizer, train, batch_size: int = 32, steps: int = 30) -> dict:
    """GFLOP/s of the recipe's training step on the current threads: forward + backward + fused AdamW on
    length-grouped batches of real training pairs (3x the forward FLOPs)."""
    model = type(model)(model.config).train()  # a fresh copy: the trained one is not touched
    dataset = g2p.tokenize_split(train.select(range(8 * batch_size * steps)), tokenizer)
    collate = DataCollatorForSeq2Seq(tokenizer, model=model)
    # Length-grouped, as the recipe's sampler gives them; every 8th batch, spread over the lengths.
    groups = length_sorted_batches([len(ids) for ids in dataset["input_ids"]], batch_size)[::8]
    batches = [collate([dataset[i] for i in group]) for group in groups]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)

    def step(batch):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    for batch in batches[:3]:
        step(batch)
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    seconds = (time.perf_counter() - start) / len(batches)
    flops = 0.0
    for batch in batches:
        B, S = batch["input_ids"].shape
        T = batch["labels"].size(1)
        flops += 3 * B * flops_per_padded_pair(model.config, S, T)
    return {"ms_per_step": round(1000 * seconds, 1), "gflop_per_second": round(flops / len(batches) / seconds / 1e9, 2)}


def flops_per_padded_pair(config, source: int, target: int) -> float:
    """Forward FLOPs of one teacher-forced pair padded to `source` and `target` tokens (all positions at once)."""
    d, f, S, T = config.d_model, config.d_ff, source, target
    encoder = encoder_macs(config, S)
    decoder = config.decoder_layers * (T * (6 * d * d + 2 * d * f) + S * 2 * d * d + 2 * T * T * d + 2 * T * S * d)
    return 2 * (encoder + decoder + T * d * config.vocab_size)


def phonetisaurus_row(workdir: str, train, words: list[str]) -> tuple[float, list[str]]:
    """Phonetisaurus's best decoding seconds and outputs (one core), training it first unless DIR has model.fst."""
    import g2p_baselines  # beside this file

    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    fst = folder / "model.fst"
    if not fst.is_file():
        print(f"training Phonetisaurus into {folder} (~5 CPU-minutes, once) ...", flush=True)
        fst, _ = g2p_baselines.train_phonetisaurus(train, folder)
    g2p_baselines.decode_phonetisaurus(fst, words[:256], folder)  # warm-up: the FST into the page cache
    best = (float("inf"), None)
    for _ in range(3):
        outputs, seconds = g2p_baselines.decode_phonetisaurus(fst, words, folder)
        best = min(best, (seconds, outputs), key=lambda pair: pair[0])
    return best


def ctranslate2_rows(model_dir: str, threads: int, folder: str) -> list[tuple[str, int, Callable, int]]:
    """(row name, cores, engine factory, num_beams) for CTranslate2 exports of the model, float32 and int8. Each
    engine is created for its row and dropped after it: an idle translator's threads still take CPU from others."""
    from hf_minimal.serving.ctranslate2 import Engine, export

    rows = []
    for quantization in ("float32", "int8"):
        path = export(model_dir, Path(folder) / quantization, quantization=quantization)
        layouts = [(threads, 1), (1, threads), (1, 1)] if quantization == "float32" else [(threads, 1)]
        for workers, intra in dict.fromkeys(layouts):
            make = partial(Engine, path, workers=workers, threads=intra)
            label = f"CTranslate2 {quantization} {{}} ({workers} worker(s) x {intra} thread(s))"
            rows.append((label.format("greedy"), workers * intra, make, 1))
            if (workers, intra) == (threads, 1):
                rows.append((label.format("beam 5"), workers * intra, make, 5))
    return rows


def pytorch_rows(model, tokenizer, words: list[str], marian: bool) -> dict[str, Callable]:
    """Row name -> a call that transcribes `words`: ours through transcribe and plain generate, and the Marian twin."""
    candidates = {
        "ours: transcribe greedy (fast path)": lambda: g2p.transcribe(model, tokenizer, words),
        "ours: generate greedy (dynamic cache)": lambda: batched_generate(model, tokenizer, words),
        "ours: transcribe beam 5": lambda: g2p.transcribe(model, tokenizer, words, num_beams=5),
        "ours: generate beam 5 (dynamic cache)": lambda: batched_generate(model, tokenizer, words, num_beams=5),
    }
    if marian:
        twin = marian_twin(model)
        static_length = max_decoding_length(max(len(w) for w in words) + 1)  # one graph for every batch
        compiled = CompileConfig(fullgraph=True, dynamic=True, mode="default")
        compiled._compile_all_devices = True  # transformers compiles on CUDA only unless told
        candidates |= {
            "Marian: generate greedy (dynamic cache)": lambda: batched_generate(twin, tokenizer, words),
            "Marian: generate greedy (static cache + compile)": lambda: batched_generate(
                marian,
                tokenizer,
                words,
                static_length,
                cache_implementation="static",
                compile_config=compiled,
            ),
            "Marian: generate beam 5 (dynamic cache)": lambda: batched_generate(twin, tokenizer, words, num_beams=5),
        }
    return candidates


def summarise(rows: dict, outputs: dict, words: list, references: list, config, threads: int) -> tuple[float, float]:
    """Adds each row's per-core rate, WER, words that differ from plain generate and share of the matmul peak;
    returns the FLOPs per word and that peak."""
    reference = outputs["ours: generate greedy (dynamic cache)"]
    reference_beam = outputs["ours: generate beam 5 (dynamic cache)"]
    letters = sum(len(w) + 1 for w in words) / len(words)
    phones = sum(len(p.split()) + 1 for p in reference) / len(words)
    flops = flops_per_word(config, letters, phones)
    peak = matmul_peak(config.d_model, config.d_ff)  # on the same threads
    for name, row in rows.items():
        row["words_per_second_per_core"] = round(row["words_per_second"] / row["cores"])
        row.update(g2p.per_wer(outputs[name], references))
        greedy = "beam" not in name
        same_search = reference if greedy else reference_beam  # ours through plain generate, same beam width
        row["words_differing_from_generate"] = sum(a != b for a, b in zip(outputs[name], same_search, strict=True))
        if greedy and not name.startswith("Phonetisaurus") and "int8" not in name and row["cores"] == threads:
            row["gflop_per_second"] = round(flops * row["words_per_second"] / 1e9, 2)
            row["fraction_of_peak"] = round(row["gflop_per_second"] / peak, 3)
    return flops, peak


def print_report(report: dict) -> None:
    """The rows as a table, then the arithmetic and the training step against the matmul peak."""
    training, load = report["training_step"], report["load_average_at_start"]
    flops, peak = report["mflop_per_word_greedy"] * 1e6, report["matmul_peak_gflop_per_second"]
    peak_one = report["matmul_peak_gflop_per_second_one_thread"]
    print(f"\n{'row':<64} {'words/s':>8} {'per core':>8} {'WER %':>6} {'differ':>6} {'% of peak':>9}")
    for name, row in report["rows"].items():
        share = f"{100 * row['fraction_of_peak']:.0f}" if "fraction_of_peak" in row else ""
        print(
            f"{name:<64} {row['words_per_second']:8,} {row['words_per_second_per_core']:8,} {row['wer']:6.2f} "
            f"{row['words_differing_from_generate']:6} {share:>9}"
        )
    print(
        f"{flops / 1e6:.1f} MFLOP per word greedy; matmul peak {peak:.0f} GFLOP/s on {report['threads']} thread(s), "
        f"{peak_one:.0f} on one; training step (batch 32, 1 thread): {training['ms_per_step']} ms, "
        f"{training['gflop_per_second']} GFLOP/s = {100 * training['fraction_of_peak']:.0f}% of peak; "
        f"load average {load:.1f} -> {report['load_average_at_end']:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", nargs="?", default="outputs/g2p-cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--phonetisaurus", metavar="DIR", help="also time Phonetisaurus, its model kept in DIR")
    parser.add_argument("--no_marian", action="store_true", help="skip the MarianMT rows (~20 s, its compile included)")
    parser.add_argument("--no_ctranslate2", action="store_true", help="skip the CTranslate2 rows")
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = g2p.load_model(args.model_dir, "cpu")
    data = g2p.load_cmudict(keep_stress=g2p.keeps_stress(tokenizer))
    words, references = list(data["test"]["word"]), list(data["test"]["pronunciations"])
    load = os.getloadavg()[0]

    candidates = pytorch_rows(model, tokenizer, words, marian=not args.no_marian)
    rows, outputs = {}, {}

    def record(name: str, seconds: float, cores: int) -> None:
        rows[name] = {"seconds": round(seconds, 3), "words_per_second": round(len(words) / seconds), "cores": cores}
        print(f"{name:<64} {len(words) / seconds:8.0f} words/s  ({seconds:.2f} s, {cores} core(s))", flush=True)

    for name, fn in candidates.items():
        seconds, outputs[name] = timed(fn, 1 if "beam" in name or "static" in name else args.repeats)
        record(name, seconds, args.threads)
    with tempfile.TemporaryDirectory() as exports:
        engine_rows = [] if args.no_ctranslate2 else ctranslate2_rows(args.model_dir, args.threads, exports)
        for name, cores, make, beams in engine_rows:
            translate = partial(make().translate, words, num_beams=beams)
            seconds, outputs[name] = timed(translate, 1 if beams > 1 else args.repeats)
            record(name, seconds, cores)
            del translate  # the engine with it, which joins its threads
    torch.set_num_threads(args.threads)  # a translator resets the OpenMP thread count torch shares with it
    if args.phonetisaurus:
        name = "Phonetisaurus (process start and FST load included)"
        seconds, outputs[name] = phonetisaurus_row(args.phonetisaurus, data["train"], words)
        record(name, seconds, 1)

    flops, peak = summarise(rows, outputs, words, references, model.config, args.threads)
    torch.set_num_threads(1)  # the training step's GFLOP/s per core, against one core's peak
    peak_one = matmul_peak(model.config.d_model, model.config.d_ff)
    training = training_step_gflops(model, tokenizer, data["train"])
    training["fraction_of_peak"] = round(training["gflop_per_second"] / peak_one, 3)
    report = {
        "model": args.model_dir,
        "words": len(words),
        "threads": args.threads,
        "load_average_at_start": load,
        "load_average_at_end": os.getloadavg()[0],
        "mflop_per_word_greedy": round(flops / 1e6, 2),
        "matmul_peak_gflop_per_second": round(peak, 1),
        "matmul_peak_gflop_per_second_one_thread": round(peak_one, 1),
        "rows": rows,
        "training_step": training,
    }
    print_report(report)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
