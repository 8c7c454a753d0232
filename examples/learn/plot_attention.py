"""Pictures of what the model learned: a G2P model's cross-attention, and the sinusoidal positional encoding.

    python examples/learn/plot_attention.py MODEL_DIR WORD [--output PATH]   # letters x phones, a panel per layer/head
    python examples/learn/plot_attention.py --pe [--output PATH]             # the PE matrix of Section 3.5, no model

MODEL_DIR is a folder saved by `save_pretrained` that holds the model and its G2P tokenizer (source tokens:
lowercase letters; target tokens: ARPAbet phones). The word is pronounced greedily, then the decoder is run once
more, teacher-forced on that output, with `output_attentions=True` (which takes the eager attention path, so the
weights are the ones the model computed), and each layer's encoder-decoder attention is drawn.

Figure size, so the PNG size is known in advance: the cross-attention figure is (heads x PANEL + 1) inches wide
and (layers x PANEL + 0.8) inches high, PANEL = --panel_size (2.6); the PE figure is 10 x 6 inches; pixels are
inches x --dpi (100). Needs matplotlib, an optional extra: pip install "hf-minimal[plot]". Runs headless (Agg).
"""

import argparse
import math
import os
import sys
from pathlib import Path

COLORBAR_INCHES = 1.0  # width added for the shared colour bar
TITLE_INCHES = 0.8  # height added for the title lines
PE_FIGSIZE = (10.0, 6.0)


def load_pyplot():
    """Import matplotlib with the headless Agg backend, or exit with the install command."""
    try:
        import matplotlib
    except ImportError:
        sys.exit(
            "plot_attention.py needs matplotlib, which is an optional extra: "
            'pip install "hf-minimal[plot]" (or pip install matplotlib).'
        )
    matplotlib.use("Agg")  # no display needed: we only write files
    import matplotlib.pyplot as plt

    return plt


def encode_word(tokenizer, word: str) -> list[int]:
    """Source ids of a word: the tokenizer's own encoding (so special tokens match training), letter by letter."""
    letters = word.strip().lower()
    if not letters or any(ch.isspace() for ch in letters):
        sys.exit(f"WORD must be one word of letters, got {word!r}.")
    unk = tokenizer.unk_token_id
    ids = tokenizer(letters)["input_ids"]
    if unk is not None and unk in ids:
        # A tokenizer that splits on whitespace needs the letters spaced out.
        ids = tokenizer(" ".join(letters))["input_ids"]
    if unk is not None and unk in ids:
        vocab = tokenizer.get_vocab()
        unknown = sorted({ch for ch in letters if ch not in vocab})
        known = "".join(sorted(t for t in vocab if len(t) == 1 and not t.isupper()))  # phones are upper case
        sys.exit(
            f"The tokenizer in the model folder does not know the letter(s) {unknown} of {word!r}; "
            f"it knows: {known or '(no single letters: is this a G2P tokenizer?)'}."
        )
    return ids


def load_model_and_tokenizer(model_dir: str):
    if not Path(model_dir).is_dir():
        sys.exit(f"MODEL_DIR {model_dir!r} is not a folder; pass the folder written by save_pretrained.")
    if not (Path(model_dir) / "config.json").is_file():
        sys.exit(f"MODEL_DIR {model_dir!r} has no config.json; pass the folder written by model.save_pretrained.")
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    import hf_minimal  # noqa: F401  (registers the minimal_transformer Auto classes)

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as error:
        sys.exit(
            f"Could not load a tokenizer from {model_dir!r} ({error}). The G2P tokenizer must be saved beside the "
            "model: tokenizer.save_pretrained(MODEL_DIR)."
        )
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    return model, tokenizer


def cross_attention(model, tokenizer, word: str, max_new_tokens: int):
    """Greedy pronunciation, then cross-attention (layers, heads, phones, letters) and the axis labels."""
    import torch

    source = torch.tensor([encode_word(tokenizer, word)])
    with torch.no_grad():
        generated = model.generate(
            input_ids=source,
            attention_mask=torch.ones_like(source),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
        )  # (1, 1 + n): decoder start token, then the predicted phones
        # Teacher-forced on its own greedy output, the decoder makes the same predictions in one pass.
        outputs = model(
            input_ids=source,
            attention_mask=torch.ones_like(source),
            decoder_input_ids=generated[:, :-1],
            output_attentions=True,
            use_cache=False,
        )
    weights = torch.stack(outputs.cross_attentions)[:, 0]  # (layers, heads, n, source length)
    letters = tokenizer.convert_ids_to_tokens(source[0].tolist())
    phones = tokenizer.convert_ids_to_tokens(generated[0, 1:].tolist())
    return weights.double().numpy(), letters, phones


def plot_cross_attention(args: argparse.Namespace) -> Path:
    plt = load_pyplot()
    model, tokenizer = load_model_and_tokenizer(args.model_dir)
    weights, letters, phones = cross_attention(model, tokenizer, args.word, args.max_new_tokens)
    layers, heads = weights.shape[:2]
    panel = args.panel_size
    fig, axes = plt.subplots(
        layers,
        heads,
        figsize=(heads * panel + COLORBAR_INCHES, layers * panel + TITLE_INCHES),
        squeeze=False,
        layout="constrained",
    )
    spoken = " ".join(p for p in phones if p not in tokenizer.all_special_tokens)
    fig.suptitle(
        f"Cross-attention of {Path(args.model_dir).resolve().name}: {args.word!r} -> /{spoken}/\n"
        "rows: the phone being predicted; columns: the source letters it attends to",
        fontsize=10,
    )
    for layer in range(layers):
        for head in range(heads):
            ax = axes[layer, head]
            image = ax.imshow(weights[layer, head], vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
            ax.set_title(f"layer {layer}, head {head}", fontsize=8)
            ax.set_xticks(range(len(letters)), letters, fontsize=7)
            ax.set_yticks(range(len(phones)), phones, fontsize=7)
            if layer == layers - 1:
                ax.set_xlabel("source letter", fontsize=8)
            if head == 0:
                ax.set_ylabel("predicted phone", fontsize=8)
    fig.colorbar(image, ax=axes, label="attention weight", shrink=0.9)
    output = Path(args.output or f"cross_attention_{args.word.lower()}.png")
    fig.savefig(output, dpi=args.dpi)
    plt.close(fig)
    print(f"{args.word} -> {spoken}")
    return output


def plot_positional_encoding(args: argparse.Namespace) -> Path:
    plt = load_pyplot()
    import torch

    from hf_minimal import sinusoidal_position_encoding

    if args.positions < 1 or args.d_model < 2 or args.d_model % 2:
        sys.exit(f"--positions must be >= 1 and --d_model even and >= 2; got {args.positions} and {args.d_model}.")
    pe = sinusoidal_position_encoding(args.positions, args.d_model, torch.float64).numpy()  # (positions, d_model)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=PE_FIGSIZE, height_ratios=[3, 2], layout="constrained")
    fig.suptitle(
        f"Sinusoidal positional encoding (Section 3.5), d_model = {args.d_model}: "
        "PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(...)",
        fontsize=10,
    )
    image = top.imshow(pe, cmap="RdBu", vmin=-1.0, vmax=1.0, aspect="auto", interpolation="antialiased")
    top.set_xlabel("embedding dimension (even: sin, odd: cos, interleaved)")
    top.set_ylabel("position")
    top.set_title("the matrix added to the scaled embeddings", fontsize=9)
    fig.colorbar(image, ax=top, label="PE value")
    # Even dimensions spread over the width, so that wavelengths from 2*pi to ~10000*2*pi are all visible.
    for dim in sorted({2 * round(f * args.d_model / 2) for f in (0.0, 1 / 8, 1 / 4, 3 / 8)}):
        wavelength = 2 * math.pi * 10000 ** (dim / args.d_model)
        bottom.plot(pe[:, dim], label=f"dim {dim} (sin, wavelength {wavelength:.3g})")
    bottom.set_xlabel("position")
    bottom.set_ylabel("PE value")
    bottom.set_title("a few columns: each pair (2i, 2i+1) is a sinusoid with its own wavelength", fontsize=9)
    bottom.set_ylim(-1.15, 1.75)  # headroom for the legend
    bottom.set_yticks([-1.0, -0.5, 0.0, 0.5, 1.0])
    bottom.legend(fontsize=7, loc="upper center", ncols=4)
    output = Path(args.output or "positional_encoding.png")
    fig.savefig(output, dpi=args.dpi)
    plt.close(fig)
    return output


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", nargs="?", metavar="MODEL_DIR", help="folder with the saved model and tokenizer")
    parser.add_argument("word", nargs="?", metavar="WORD", help="a word to pronounce, e.g. 'attention'")
    parser.add_argument("--pe", action="store_true", help="plot the sinusoidal positional encoding (no model)")
    parser.add_argument("--output", help="PNG path (default: cross_attention_WORD.png or positional_encoding.png)")
    parser.add_argument("--dpi", type=int, default=100, help="pixels per inch (default 100)")
    parser.add_argument("--panel_size", type=float, default=2.6, help="inches per layer/head panel (default 2.6)")
    parser.add_argument("--max_new_tokens", type=int, default=32, help="longest pronunciation generated")
    parser.add_argument("--positions", type=int, default=100, help="--pe: positions shown (default 100)")
    parser.add_argument("--d_model", type=int, default=512, help="--pe: d_model (default 512, the paper's)")
    args = parser.parse_args(argv)
    if args.pe and args.model_dir is not None:
        parser.error("--pe needs no MODEL_DIR or WORD; run it without them.")
    if not args.pe and (args.model_dir is None or args.word is None):
        parser.error("pass MODEL_DIR and WORD (e.g. plot_attention.py outputs/g2p-cpu attention), or --pe.")
    if args.dpi < 1 or args.panel_size <= 0 or args.max_new_tokens < 1:
        parser.error("--dpi, --panel_size and --max_new_tokens must be positive.")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    output = plot_positional_encoding(args) if args.pe else plot_cross_attention(args)
    print(f"wrote {os.fspath(output)}")


if __name__ == "__main__":
    main()
