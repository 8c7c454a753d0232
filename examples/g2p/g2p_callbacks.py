"""Trainer callbacks for a time-budgeted run: stop on time, cool the learning rate down before the end, log speed
and the time-to-quality curve, share the cores with other work, and keep the snapshots a checkpoint average
needs. Also the job's clock and the machine's name.

A time budget turns machine speed into steps, which is why a run records its speed, the load beside it and the
validation WER against the seconds since the job started.
"""

import math
import os
import platform
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback

CHECK_EVERY = 10  # steps between readings of the clock and the load average: cheap, and fine-grained enough


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


def hardware() -> str:
    """The device a run trained on, for results.json and the model card."""
    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}"
    cpu = platform.processor() or platform.machine()
    return f"CPU ({cpu}), {os.cpu_count()} cores, torch threads per process: {torch.get_num_threads()}"


class TimeBudget(TrainerCallback):
    """Stops training `minutes` after `start` (the job's start: imports, data loading and tokenisation count), then
    evaluates and saves as at max_steps. `spent` is the fraction of the budget used at the last reading; under DDP
    the ranks agree on the slowest clock, so they stop at the same step."""

    def __init__(self, minutes: float | None, start: float | None = None):
        self.seconds = 60.0 * minutes if minutes else None
        self.start = time.time() if start is None else start
        self.spent = 0.0

    def on_train_begin(self, args, state, control, **kwargs):
        self.spent = 0.0

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is None or state.global_step % CHECK_EVERY:
            return
        elapsed = torch.tensor(time.time() - self.start, device=args.device)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(elapsed, op=torch.distributed.ReduceOp.MAX)
        self.spent = elapsed.item() / self.seconds
        if self.spent >= 1.0:
            control.should_training_stop = True
            control.should_evaluate |= args.eval_strategy == "steps"
            control.should_save |= args.save_strategy == "steps"


class CoolDown(TrainerCallback):
    """Over the last `fraction` of the budget (the time budget or max_steps, whichever runs out first) the learning
    rate falls linearly to zero, on top of the recipe's schedule.

    The inverse-square-root schedule does not depend on the total number of steps, so a run cut by time follows the
    same curve as one cut by max_steps; the cool-down anneals what the budget cuts short, as fixed-length schedules
    do at their end (the paper averages its last checkpoints instead, Section 6.1: `Snapshots`).
    """

    def __init__(self, budget: TimeBudget, fraction: float):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"cooldown_fraction must be in [0, 1], got {fraction}.")
        self.budget, self.fraction = budget, fraction

    def factor(self, step: int) -> float:
        """1 until the cool-down starts, then down linearly to 0 at the end of the budget."""
        spent = max(self.budget.spent, step / self.max_steps)
        return min(1.0, max(0.0, (1.0 - spent) / self.fraction))

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self.max_steps = state.max_steps
        if not self.fraction:
            return
        if not isinstance(lr_scheduler, torch.optim.lr_scheduler.LambdaLR):
            raise ValueError(f"cooldown_fraction needs a LambdaLR schedule, got {type(lr_scheduler).__name__}.")
        lr_scheduler.lr_lambdas = [lambda step, f=f: f(step) * self.factor(step) for f in lr_scheduler.lr_lambdas]


class TrainingLog(TrainerCallback):
    """One minute into training, prints the steps per second reached and warns when the load average shows other
    work competing for the cores (`speed` keeps both for results.json); `curve` records each validation WER with
    the seconds since the job started (time to quality)."""

    def __init__(self, start: float):
        self.start, self.speed, self.curve = start, {}, []

    def on_train_begin(self, args, state, control, **kwargs):
        self.train_start, self.first_step = time.time(), state.global_step

    def on_step_end(self, args, state, control, **kwargs):
        if self.speed or state.global_step % CHECK_EVERY or time.time() - self.train_start < 60.0:
            return
        load = load_average()
        steps_per_second = (state.global_step - self.first_step) / (time.time() - self.train_start)
        self.speed = {"steps_per_second_first_minute": round(steps_per_second, 2), "load_average_first_minute": load}
        if state.is_world_process_zero:
            print(f"speed: {self.speed['steps_per_second_first_minute']} steps/s over the first minute of training")
            if other_work_running(load):
                print(
                    f"WARNING: load average {load:.1f} on {os.cpu_count()} cores: other work is running, so this "
                    f"time-budgeted run will reach fewer steps (and a worse WER) than on an idle machine."
                )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics and "eval_wer" in metrics:
            seconds = round(time.time() - self.start, 1)
            self.curve.append({"seconds": seconds, "step": state.global_step, "wer": metrics["eval_wer"]})


class SharedCores(TrainerCallback):
    """Keeps a one-process CPU run fast on idle cores and working on busy ones, by its intra-op thread count.

    One process with a thread per core makes the most steps on an idle machine (docs/g2p.md). But OpenMP threads
    meet at the end of every operation, so while another job holds a core every step waits for the thread that lost
    it. So: with the load average above the cores + 0.5 (other work is running) it drops to one thread, and once the
    load falls below the cores - 0.5 it takes its threads back. The load average lags by about a minute, and so
    does the switch. `switches` lists each change for results.json; the end of training restores the threads.
    """

    def __init__(self, start: float):
        self.start, self.threads, self.switches = start, torch.get_num_threads(), []
        self.cores, self.active = os.cpu_count() or 1, False

    def on_train_begin(self, args, state, control, **kwargs):
        # DDP processes already run one thread each, and a GPU run's CPU threads only feed it.
        self.active = self.threads > 1 and args.world_size == 1 and torch.device(args.device).type == "cpu"

    def on_step_end(self, args, state, control, **kwargs):
        if not self.active or state.global_step % CHECK_EVERY or (load := load_average()) is None:
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


class Snapshots(TrainerCallback):
    """Every `every` steps writes the weights to `folder`/step-N.safetensors and keeps the last `keep` of them, for a
    checkpoint average after training (Section 6.1). On disk, so a resumed run still has the snapshots before it."""

    def __init__(self, folder: str | Path, every: int, keep: int):
        if every < 1 or keep < 2:
            raise ValueError(f"average_every_steps must be >= 1 and average_checkpoints >= 2, got {every}, {keep}.")
        self.folder, self.every, self.keep = Path(folder), every, keep

    @staticmethod
    def step(path: Path) -> int:
        """The training step a snapshot file was written at."""
        return int(path.stem.split("-")[1])

    def paths(self) -> list[Path]:
        """The snapshots on disk, oldest first."""
        return sorted(self.folder.glob("step-*.safetensors"), key=self.step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every or not state.is_world_process_zero:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        # named_parameters() names a tied embedding once, so the file holds no shared tensors.
        weights = {name: p.detach().cpu().contiguous() for name, p in model.named_parameters()}
        save_file(weights, self.folder / f"step-{state.global_step}.safetensors")
        for old in self.paths()[: -self.keep]:
            old.unlink()


def average_weights(paths: list[Path]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the snapshots' parameters, summed in float64."""
    total: dict[str, torch.Tensor] = {}
    for path in paths:
        weights = load_file(path)
        for name, tensor in weights.items():
            total[name] = total.get(name, 0) + tensor.double()
    return {name: (total[name] / len(paths)).to(tensor.dtype) for name, tensor in weights.items()}
