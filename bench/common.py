"""What the benchmarks share: timing (best-of and interleaved), batched generation with the package's decoding
rules, peak memory of a process, and the environment a number was measured in."""

import os
import platform
import time
from collections.abc import Callable

import torch
import transformers

from hf_minimal.serving.decoding import length_sorted_batches, max_decoding_length

GENERATE_BATCH = 256  # words per generate() call, as g2p.transcribe batches them


def timed(fn, repeats: int) -> tuple[float, object]:
    fn()  # warm-up: allocations, kernels chosen, graphs compiled
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def batched_generate(model, tokenizer, words, max_length: int | None = None, **generate_kwargs) -> list[str]:
    """transcribe's length-sorted batches through model.generate on the calling thread: the path users start with."""
    results = [""] * len(words)
    for chunk in length_sorted_batches([len(word) for word in words], GENERATE_BATCH):
        batch = tokenizer([words[i] for i in chunk], return_tensors="pt", padding=True)
        length = max_length or max_decoding_length(batch["input_ids"].size(1))
        generated = model.generate(**batch, max_length=length, do_sample=False, **generate_kwargs)
        for i, text in zip(chunk, tokenizer.batch_decode(generated, skip_special_tokens=True), strict=True):
            results[i] = text
    return results


class Timer:
    """Wall-clock seconds of a callable, synchronising CUDA so that queued kernels are counted."""

    def __init__(self, device: str):
        self.device = device

    def __call__(self, fn: Callable[[], object], iters: int) -> float:
        self.sync()
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        self.sync()
        return (time.perf_counter() - start) / iters

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()


def interleaved(
    fns: dict[str, Callable[[], object]], timer: Timer, reps: int, warmup: int, min_sample_s: float
) -> dict[str, list[float]]:
    """Seconds per call of each function: `warmup` untimed calls each, then `reps` samples, alternating the order.

    A sample averages enough calls to last about `min_sample_s` (the same count for every function)."""
    slowest = 0.0
    for fn in fns.values():
        for _ in range(warmup - 1):
            fn()
        slowest = max(slowest, timer(fn, 1))  # the last warm-up call, timed only to size the samples
    iters = max(1, round(min_sample_s / max(slowest, 1e-9)))
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for rep in range(reps):
        for name in names if rep % 2 == 0 else names[::-1]:
            samples[name].append(timer(fns[name], iters))
    return samples


def rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MiB."""
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":")) / 1024


def reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # Linux: resets VmHWM to the current RSS


def environment(device: str = "cpu") -> dict:
    """Where and with what a benchmark ran: the numbers mean nothing without it."""
    return {
        "device": "cpu" if device == "cpu" else torch.cuda.get_device_name(device),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_at_start": os.getloadavg()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }
