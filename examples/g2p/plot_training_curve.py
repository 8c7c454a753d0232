"""Time to quality: validation WER against wall-clock minutes since the job started, from results.json files.

    python examples/g2p/plot_training_curve.py outputs/g2p-cpu --baseline "Phonetisaurus (test)=25.53" \
        --output docs/time_to_quality.png
    python examples/g2p/plot_training_curve.py RUN_A RUN_B --label "3 + 1 layers" --label "2 + 1 layers"

Each RUN is an output folder of examples/g2p/train_g2p.py (or its results.json). Its `train.validation_curve` holds
(seconds since the job started, step, validation WER) for every evaluation during training: imports, data loading
and evaluation count, so the x axis is what a user waits. The test WER the job ends with is drawn as a marker at
the job's end (`job_seconds`), and each --baseline NAME=WER as a horizontal line. The validation curve scores the
recipe's validation sample (`max_eval_samples`, 1,000 words by default), the marker and a baseline from
bench/g2p_baselines.py the 6,295 test words: the legend says which. Needs matplotlib (pip install
"hf-minimal[plot]"); runs headless (Agg).
"""

import argparse
import json
import sys
from pathlib import Path

FIGSIZE = (8.0, 5.0)  # inches; the PNG is FIGSIZE x --dpi pixels


def read_results(run: str) -> dict:
    """results.json of `run` (a folder or the file), with a clear error for runs that predate the curve."""
    path = Path(run)
    path = path / "results.json" if path.is_dir() else path
    if not path.is_file():
        sys.exit(f"No results.json at {path}: pass an output folder of examples/g2p/train_g2p.py.")
    results = json.loads(path.read_text())
    if not results.get("train", {}).get("validation_curve"):
        sys.exit(f"{path} has no train.validation_curve: it was written before the curve was recorded; train again.")
    return results


def parse_baseline(text: str) -> tuple[str, float]:
    """'NAME=WER' -> (NAME, WER); argparse turns the error into a usage message."""
    name, sep, value = text.rpartition("=")
    try:
        if sep and name:
            return name, float(value)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"takes NAME=WER (e.g. 'Phonetisaurus (test)=25.53'), got {text!r}")


def load_pyplot():
    """Import matplotlib with the headless Agg backend, or exit with the install command."""
    try:
        import matplotlib
    except ImportError:
        sys.exit('plot_training_curve.py needs matplotlib: pip install "hf-minimal[plot]" (or pip install matplotlib).')
    matplotlib.use("Agg")  # no display needed: we only write files
    import matplotlib.pyplot as plt

    return plt


def draw(runs: list[dict], labels: list[str], baselines: list[tuple[str, float]]):
    """The figure: per run its validation curve (minutes, WER) and its final test WER; each baseline a line."""
    plt = load_pyplot()
    fig, ax = plt.subplots(figsize=FIGSIZE)
    for label, results in zip(labels, runs, strict=True):
        curve = results["train"]["validation_curve"]
        samples = results.get("recipe", {}).get("max_eval_samples")
        scored = f"{samples:,} words" if samples else "all words"
        (line,) = ax.plot(
            [point["seconds"] / 60 for point in curve],
            [point["wer"] for point in curve],
            marker=".",
            label=f"{label}: validation ({scored}), {results['train']['global_step']:,} steps",
        )
        test = results.get("test", {}).get("beam1")
        if test and "job_seconds" in results:
            ax.plot(
                results["job_seconds"] / 60, test["wer"], marker="*", markersize=12, color=line.get_color(),
                linestyle="none", label=f"{label}: test ({test['words']:,} words) {test['wer']:.2f}%",
            )  # fmt: skip
    for name, wer in baselines:
        ax.axhline(wer, color="black", linestyle="--", linewidth=1)
        ax.annotate(f"{name} {wer:.2f}%", (0, wer), xytext=(4, 4), textcoords="offset points", fontsize=9)
    ax.set_xlabel("minutes since the job started (start-up, training and evaluations)")
    ax.set_ylabel("WER % (greedy)")
    ax.set_ylim(bottom=min([15.0] + [wer - 3 for _, wer in baselines]), top=70.0)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    data = runs[0].get("data", {"name": "cmudict"})  # the data the first run names (results.json before it: CMUdict)
    what = "CMUdict G2P, our split" if data["name"] == "cmudict" else f"G2P on {data['description']}"
    ax.set_title(f"Time to quality on 2 CPU cores: {what}")
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", help="output folders (or results.json files) of examples/g2p/train_g2p.py")
    parser.add_argument("--label", action="append", help="one legend label per run (default: the folder name)")
    parser.add_argument("--baseline", action="append", default=[], type=parse_baseline, help="NAME=WER, a line")
    parser.add_argument("--output", default="time_to_quality.png")
    parser.add_argument("--dpi", type=int, default=100)
    args = parser.parse_args(argv)
    if args.label and len(args.label) != len(args.runs):
        sys.exit(f"{len(args.label)} --label for {len(args.runs)} runs: give one per run, or none.")
    runs = [read_results(run) for run in args.runs]
    labels = args.label or [Path(run).name for run in args.runs]
    draw(runs, labels, args.baseline).savefig(args.output, dpi=args.dpi)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
