"""Transcription speed of a trained G2P model on the whole test split: words per second, and how close to the
CPU's matrix-multiply peak it runs.

    python bench/g2p_speed.py                          # outputs/g2p-cpu (the main job's model), 2 threads
    python bench/g2p_speed.py outputs/g2p-cpu --threads 1 --json speed.json

Rows: `g2p.transcribe` greedy (the fast path: `g2p.greedy_decode`), plain `model.generate` greedy (what transcribe
did before), and beam 5 through `generate`. Each is timed after a warm-up pass, over the same 6,295 test words in
the same length-sorted batches of 256; the fast path's tokens are compared with generate's word by word. The
arithmetic per word counts the multiply-adds of every linear layer and attention product at the words' real
lengths (2 FLOP each), and the peak is `torch.mm` of (256 x d_model) @ (d_model x d_ff) on this machine and the
same threads, so the fraction says how much of the time goes into matrix products at all. Numbers:
docs/performance.md.
"""

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout
from hf_minimal import g2p


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


def flops_per_word(config, letters: float, phones: float) -> float:
    """Forward FLOPs to transcribe a word of `letters` source tokens into `phones` target tokens (with </s>)."""
    d, f, S, T = config.d_model, config.d_ff, letters, phones
    layer = 4 * d * d + 2 * d * f  # the four attention projections and the FFN, multiply-adds per token
    encoder = config.encoder_layers * (S * layer + 2 * S * S * d)  # + QKᵀ and AV over S keys
    # Decoder, per target token: self-attention projections, cross-attention q/out (k/v once per source token),
    # the FFN, attention over the cached prefix and the source, and the output projection.
    per_step = 4 * d * d + 2 * d * d + 2 * d * f + 2 * (T / 2) * d + 2 * S * d
    decoder = config.decoder_layers * (T * per_step + S * 2 * d * d) + T * d * config.vocab_size
    return 2 * (encoder + decoder)


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: allocations, kernels chosen
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def plain_generate(model, tokenizer, words, num_beams: int) -> list[str]:
    """transcribe's batching with model.generate for every beam width: the path before the fast one."""
    order = sorted(range(len(words)), key=lambda i: len(words[i]))
    results = [""] * len(words)
    for start in range(0, len(order), 256):
        chunk = order[start : start + 256]
        batch = tokenizer([words[i] for i in chunk], return_tensors="pt", padding=True)
        max_length = 2 * batch["input_ids"].size(1) + 8
        generated = model.generate(**batch, num_beams=num_beams, max_length=max_length, do_sample=False)
        for i, text in zip(chunk, tokenizer.batch_decode(generated, skip_special_tokens=True), strict=True):
            results[i] = text
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model_dir", nargs="?", default="outputs/g2p-cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the numbers here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = g2p.load_model(args.model_dir, "cpu")
    data = g2p.load_cmudict(keep_stress=g2p.keeps_stress(tokenizer))["test"]
    words, references = data["word"], data["pronunciations"]
    load = os.getloadavg()[0]

    rows = {}
    for name, fn in {
        "transcribe greedy (fast path)": lambda: g2p.transcribe(model, tokenizer, words),
        "generate greedy": lambda: plain_generate(model, tokenizer, words, 1),
        "transcribe beam 5 (generate)": lambda: g2p.transcribe(model, tokenizer, words, num_beams=5),
    }.items():
        seconds, out = timed(fn, args.repeats if "beam" not in name else 1)
        rows[name] = {"seconds": round(seconds, 3), "words_per_second": round(len(words) / seconds), "outputs": out}
        print(f"{name:<32} {len(words) / seconds:8.0f} words/s  ({seconds:.2f} s)", flush=True)

    fast, plain = rows["transcribe greedy (fast path)"]["outputs"], rows["generate greedy"]["outputs"]
    differ = [(w, a, b) for w, a, b in zip(words, fast, plain, strict=True) if a != b]
    letters = sum(len(w) + 1 for w in words) / len(words)
    phones = sum(len(p.split()) + 1 for p in plain) / len(words)
    flops = flops_per_word(model.config, letters, phones)
    peak = matmul_peak(model.config.d_model, model.config.d_ff)  # on the same threads
    for row in rows.values():
        row["gflop_per_second"] = round(flops * row["words_per_second"] / 1e9, 2)
        row["fraction_of_peak"] = round(row["gflop_per_second"] / peak, 3)
    scores = {name: g2p.per_wer(row.pop("outputs"), references) for name, row in rows.items()}
    report = {
        "model": args.model_dir,
        "words": len(words),
        "threads": args.threads,
        "load_average_at_start": load,
        "mflop_per_word_greedy": round(flops / 1e6, 2),
        "matmul_peak_gflop_per_second": round(peak, 1),
        "rows": rows,
        "scores": scores,
        "words_differing_fast_vs_generate": len(differ),
        "examples_differing": differ[:10],
    }
    print(f"{flops / 1e6:.1f} MFLOP per word greedy; matmul peak {peak:.0f} GFLOP/s on {args.threads} thread(s)")
    for name, row in rows.items():
        print(f"{name:<32} {row['gflop_per_second']:6.1f} GFLOP/s = {100 * row['fraction_of_peak']:.0f}% of peak")
    print(f"fast path vs generate: {len(differ)} of {len(words)} words differ; load average {load:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
