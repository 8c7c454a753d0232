"""Throughput of hf_minimal side by side with transformers' MarianMTModel of identical size.

Both models are built from the same numbers (vocab, d_model, layers, heads, d_ff, ReLU, √d_model embedding scale,
one tied embedding matrix, dropout), get identical batches in the same process, and are timed in interleaved
repetitions (ours, Marian, Marian, ours, ...) after untimed warm-up calls; each figure is the median over the
repetitions and the ratio is the median of the per-repetition ratios ours / Marian, which cancels most of the noise
of a shared machine.

    python bench/throughput.py                      # G2P size and the paper's base model, CPU, float32
    python bench/throughput.py --quick              # smoke run: G2P size only, few repetitions
    python bench/throughput.py --threads 1          # steadier when other jobs share the cores
    python bench/throughput.py --json bench.json    # also write every number as JSON
    python bench/throughput.py --profile train      # torch.profiler op tables of both models, no timing
    python bench/throughput.py --device cuda --dtype bf16   # GPU with bfloat16 autocast (not measured by us)

Results and how to read them: docs/performance.md.

Peak memory on CPU is the peak RSS of a fresh child process per model (RSS is per process, so two models in one
process cannot be told apart); on CUDA it is torch.cuda.max_memory_allocated, reset before each model.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import torch
import transformers
from common import Timer, environment, interleaved, reset_peak_rss, rss_mib
from transformers.utils import logging as hf_logging
from twins import SIZES, Size, build, forward_fn, generate_fn, make_batch, param_counts, train_step_fn

MODELS = ("ours", "marian")
CACHE_TOKENS = 30  # the KV-cache target: greedy decoding of 30 tokens, cached vs use_cache=False

CACHE_TOKENS = 30  # the KV-cache target: greedy decoding of 30 tokens, cached vs use_cache=False


@dataclass
class Row:
    size: str
    metric: str
    unit: str
    ours: float
    marian: float | None  # None where the row compares ours with itself
    ratio: float  # median over repetitions of ours / reference (a rate ratio: higher is better for ours)
    target: float | None
    note: str = ""


def rate_row(size: str, metric: str, unit: str, samples: dict, work: float, target: float | None, note: str = "",
             ref: str = "marian") -> Row:  # fmt: skip
    """Rates = work / median seconds; ratio = median over repetitions of ours' rate / the reference's rate."""
    ratio = statistics.median(r / o for o, r in zip(samples["ours"], samples[ref], strict=True))
    marian = work / statistics.median(samples["marian"]) if "marian" in samples else None
    return Row(size, metric, unit, work / statistics.median(samples["ours"]), marian, ratio, target, note)


def bench_size(size: Size, args: argparse.Namespace, timer: Timer) -> tuple[list[Row], dict]:
    device, dtype = args.device, args.dtype
    models = {name: build(name, size).to(device) for name in MODELS}
    counts = {name: param_counts(m) for name, m in models.items()}
    print(f"\n[{size.name}] d_model={size.d_model} layers={size.encoder_layers}+{size.decoder_layers} "
          f"heads={size.heads} d_ff={size.d_ff} vocab={size.vocab_size}; "
          f"trainable parameters: ours {counts['ours']['trainable']:,}, "
          f"Marian {counts['marian']['trainable']:,} (Marian also holds {counts['marian']['frozen']:,} frozen "
          f"sinusoid parameters)", flush=True)  # fmt: skip
    if counts["ours"]["trainable"] != counts["marian"]["trainable"]:
        raise RuntimeError(f"unfair comparison: parameter counts differ: {counts}")
    train = make_batch(size, size.train_batch, seed=1, device=device)
    gen = make_batch(size, size.gen_batch, seed=2, device=device)
    reps = args.reps or (3 if args.quick else size.reps)
    run = dict(timer=timer, reps=reps, warmup=args.warmup, min_sample_s=args.min_sample_s)
    rows = []

    started = time.perf_counter()

    def report(row: Row) -> None:
        rows.append(row)
        print(f"  {row.metric}: ours {row.ours:,.1f} {row.unit}, ratio {row.ratio:.2f} "
              f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip

    for attn in ("eager", "sdpa"):
        for m in models.values():
            m.set_attn_implementation(attn)
            m.train()
        fns = {name: train_step_fn(m, train, device, dtype) for name, m in models.items()}
        samples = interleaved(fns, **run)
        note = f"batch {size.train_batch}, fwd+bwd+Adam"
        report(rate_row(size.name, f"train step ({attn})", "tok/s", samples, train["tokens"], 1.1, note))

    # Ours against itself: a second copy with eager attention, interleaved with the sdpa one.
    eager_copy = build("ours", size).to(device).train()
    eager_copy.set_attn_implementation("eager")
    fns = {"ours": train_step_fn(models["ours"], train, device, dtype)}
    fns["eager"] = train_step_fn(eager_copy, train, device, dtype)
    samples = interleaved(fns, **run)
    note = "ours, attn_implementation sdpa vs eager"
    report(rate_row(size.name, "train step: sdpa vs eager", "tok/s", samples, train["tokens"], 1.0, note, ref="eager"))
    del eager_copy, fns

    for m in models.values():
        m.set_attn_implementation("sdpa")
        m.eval()
    samples = interleaved({name: forward_fn(m, train, device, dtype) for name, m in models.items()}, **run)
    report(rate_row(size.name, "forward (inference)", "tok/s", samples, train["tokens"], 1.0, "no cache"))

    for beams, label in ((1, "greedy"), (5, "beam 5")):
        fns = {name: generate_fn(m, gen, device, dtype, size.gen_tokens, beams) for name, m in models.items()}
        samples = interleaved(fns, **run)
        note = f"batch {size.gen_batch}, {size.gen_tokens} tokens each"
        report(rate_row(size.name, f"generate {label}", "words/s", samples, size.gen_batch, 1.1, note))

    if not size.cache_row and not args.cache_row:
        return rows, counts
    fns = {
        "ours": generate_fn(models["ours"], gen, device, dtype, CACHE_TOKENS, 1),
        "uncached": generate_fn(models["ours"], gen, device, dtype, CACHE_TOKENS, 1, use_cache=False),
    }
    samples = interleaved(fns, **{**run, "reps": max(3, reps // 2)})
    uncached = size.gen_batch / statistics.median(samples["uncached"])
    note = f"{CACHE_TOKENS} tokens each; use_cache=False: {uncached:,.1f} words/s"
    report(rate_row(size.name, "ours greedy: cache vs none", "words/s", samples, size.gen_batch, 3.0, note,
                    ref="uncached"))  # fmt: skip
    return rows, counts


# ---- profile ---------------------------------------------------------------------------------------------------


def profile_ops(size: Size, what: str, args: argparse.Namespace, calls: int = 5, top: int = 20) -> None:
    """torch.profiler's self time per op, per call of `what`, for both models side by side (after 3 warm-ups)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device.startswith("cuda") else [])
    train = make_batch(size, size.train_batch, seed=1, device=args.device)
    gen = make_batch(size, size.gen_batch, seed=2, device=args.device)
    table = {}
    for name in MODELS:
        model = build(name, size).to(args.device)
        model.train(what == "train")
        if what == "train":
            fn = train_step_fn(model, train, args.device, args.dtype)
        elif what == "forward":
            fn = forward_fn(model, train, args.device, args.dtype)
        else:
            fn = generate_fn(model, gen, args.device, args.dtype, size.gen_tokens, 5 if what == "beam" else 1)
        for _ in range(3):
            fn()
        with profile(activities=activities) as prof:
            for _ in range(calls):
                fn()
        cuda = args.device.startswith("cuda")
        table[name] = {
            e.key: (e.count / calls, e.self_device_time_total if cuda else e.self_cpu_time_total)
            for e in prof.key_averages()
        }
    total = {name: sum(t for _, t in ops.values()) / calls / 1e3 for name, ops in table.items()}
    keys = sorted(
        set(table["ours"]) | set(table["marian"]), key=lambda k: -max(table[m].get(k, (0, 0))[1] for m in MODELS)
    )
    print(f"\n[{size.name}] {what}: self time per call, ms (op count in brackets); total ours {total['ours']:.1f} ms, "
          f"Marian {total['marian']:.1f} ms")  # fmt: skip
    for key in keys[:top]:
        cells = [
            f"{table[m].get(key, (0, 0))[1] / calls / 1e3:8.2f} ({table[m].get(key, (0, 0))[0]:4.0f})" for m in MODELS
        ]
        print(f"  {key[:48]:<48} ours {cells[0]}   Marian {cells[1]}")


# ---- peak memory -----------------------------------------------------------------------------------------------


def memory_child(which: str, size_name: str, dtype: str) -> None:
    """In a fresh process: peak RSS above the post-import baseline, model included, for each phase."""
    size = SIZES[size_name]
    torch.manual_seed(0)
    reset_peak_rss()
    baseline = rss_mib("VmRSS")
    model = build(which, size)
    result = {}
    for phase in ("generate", "train"):
        if phase == "generate":
            model.eval()
            fn = generate_fn(model, make_batch(size, size.gen_batch, seed=2, device="cpu"), "cpu", dtype,
                             size.gen_tokens, 5)  # fmt: skip
        else:
            model.train()
            fn = train_step_fn(model, make_batch(size, size.train_batch, seed=1, device="cpu"), "cpu", dtype)
        reset_peak_rss()
        for _ in range(1 if phase == "generate" else 3):  # Adam allocates its state in the first step
            fn()
        result[phase] = rss_mib("VmHWM") - baseline
    print(json.dumps(result))


def peak_memory(size: Size, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """MiB per model and phase: {"ours": {"generate": .., "train": ..}, "marian": {...}}."""
    result = {}
    if args.device.startswith("cuda"):
        for which in MODELS:
            model = build(which, size).to(args.device)
            result[which] = {}
            for phase in ("generate", "train"):
                batch = make_batch(size, size.gen_batch if phase == "generate" else size.train_batch,
                                   seed=2 if phase == "generate" else 1, device=args.device)  # fmt: skip
                if phase == "generate":
                    model.eval()
                    fn = generate_fn(model, batch, args.device, args.dtype, size.gen_tokens, 5)
                else:
                    model.train()
                    fn = train_step_fn(model, batch, args.device, args.dtype)
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
                for _ in range(1 if phase == "generate" else 3):
                    fn()
                torch.cuda.synchronize()
                result[which][phase] = torch.cuda.max_memory_allocated() / 2**20
            del model, fn
            torch.cuda.empty_cache()
        return result
    for which in MODELS:
        command = [sys.executable, os.path.abspath(__file__), "--memory_child", which, size.name, "--dtype", args.dtype]
        if args.threads:
            command += ["--threads", str(args.threads)]
        out = subprocess.run(command, check=True, capture_output=True, text=True)
        result[which] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# ---- report ----------------------------------------------------------------------------------------------------


def memory_rows(size: str, memory: dict, device: str) -> list[Row]:
    kind = "peak RSS above imports" if device == "cpu" else "max_memory_allocated"
    rows = []
    for phase in ("train", "generate"):
        ours, marian = memory["ours"][phase], memory["marian"][phase]
        note = f"{kind}, model included" + ("; 3 steps" if phase == "train" else "; beam 5")
        rows.append(Row(size, f"peak memory, {phase}", "MiB", ours, marian, ours / marian, None, note))
    return rows


def print_table(rows: list[Row]) -> None:
    header = f"{'size':<5} {'metric':<27} {'unit':<7} {'ours':>11} {'Marian':>11} {'ratio':>6} {'target':>7}  note"
    print("\n" + header + "\n" + "-" * (len(header) + 40))
    for r in rows:
        marian = f"{r.marian:>11,.1f}" if r.marian is not None else f"{'':>11}"
        if r.target is None:
            target = f"{'':>7}"
        else:
            target = f"{'≥' if r.unit != 'MiB' else '≤'}{r.target:.1f}x".rjust(7)
            met = r.ratio >= r.target if r.unit != "MiB" else r.ratio <= r.target
            target += " " if met else "!"
        print(f"{r.size:<5} {r.metric:<27} {r.unit:<7} {r.ours:>11,.1f} {marian} {r.ratio:>5.2f}x {target} {r.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", default=None, help="comma-separated: g2p,g2p31,base (default g2p,base; g2p with --quick)"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="bf16 = bfloat16 autocast")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per figure (default 15 g2p, 7 base)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls per model before timing")
    parser.add_argument("--min_sample_s", type=float, default=0.2, help="a timed sample repeats calls to last this")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: as the machine is)")
    parser.add_argument("--no_memory", action="store_true", help="skip the peak-memory measurement")
    parser.add_argument("--cache_row", action="store_true", help="KV-cache speed-up for base too (slow)")
    parser.add_argument("--quick", action="store_true", help="smoke run: G2P size, 3 repetitions, 1 warm-up call")
    parser.add_argument("--json", default=None, metavar="PATH", help="also write the results as JSON here")
    parser.add_argument(
        "--profile", choices=["train", "forward", "greedy", "beam"], help="print op profiles, no timing"
    )
    parser.add_argument("--memory_child", nargs=2, metavar=("MODEL", "SIZE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(*args.memory_child, args.dtype)
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("--device cuda given, but torch.cuda.is_available() is False")
    if args.quick:
        args.warmup = min(args.warmup, 1)
        args.min_sample_s = min(args.min_sample_s, 0.05)
    args.warmup = max(args.warmup, 1)
    sizes = (args.sizes or ("g2p" if args.quick or args.profile else "g2p,base")).split(",")
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        parser.error(f"unknown size(s) {unknown}; choose from {list(SIZES)}")
    if args.profile:
        for name in sizes:
            profile_ops(SIZES[name], args.profile, args)
        return

    env = {"command": " ".join(["python", *sys.argv]), **environment(args.device), "dtype": args.dtype}
    env["warmup"] = args.warmup
    print(f"device {env['device']}, dtype {args.dtype}, torch threads {env['torch_threads']} of {env['cpu_count']} "
          f"CPUs, load average {env['load_average_at_start']:.1f}; torch {torch.__version__}, transformers "
          f"{transformers.__version__}", flush=True)  # fmt: skip
    if args.device == "cpu" and env["torch_threads"] > 1 and env["load_average_at_start"] > 0.5:
        print("note: other jobs are using the CPUs; with several threads every OpenMP region waits for its busiest "
              "thread, so expect outliers (OMP_WAIT_POLICY=PASSIVE or --threads 1 steadies the numbers)")  # fmt: skip
    timer = Timer(args.device)
    started = time.perf_counter()
    rows, results = [], {"environment": env, "sizes": {}}
    for name in sizes:
        size_rows, counts = bench_size(SIZES[name], args, timer)
        rows += size_rows
        memory = None if args.no_memory else peak_memory(SIZES[name], args)
        rows += memory_rows(name, memory, args.device) if memory else []
        results["sizes"][name] = {"size": asdict(SIZES[name]), "parameters": counts, "memory_mib": memory}
    env["load_average_at_end"] = os.getloadavg()[0]
    env["seconds"] = round(time.perf_counter() - started, 1)
    print_table(rows)
    print(f"\nratio: ours / Marian (rates: higher is faster; memory: lower is less), the median over interleaved "
          f"repetitions; '!' marks a missed target. {env['seconds']:.0f} s, load average "
          f"{env['load_average_at_start']:.1f} at start, {env['load_average_at_end']:.1f} at end.")  # fmt: skip
    results["rows"] = [asdict(r) for r in rows]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
