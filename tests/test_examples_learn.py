"""The learning material: the attention walkthrough, the plotting script, and the Tour's code links.

Scripts run as fresh subprocesses, as a reader runs them; PNGs are checked by their bytes (signature, chunk CRCs,
IHDR size, decompressible pixel data), not by how they look.
"""

import json
import math
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, ROOT, load_script, save_tiny_g2p
from limits import TIMEOUT
from tokenizers import Regex, Tokenizer, models, pre_tokenizers, processors
from transformers import AutoTokenizer, PreTrainedTokenizerFast

import hf_minimal

WALKTHROUGH = EXAMPLES / "learn" / "attention_walkthrough.py"
PLOT = EXAMPLES / "learn" / "plot_attention.py"

# The course's float64 result for Q = K = [[1,0,1,0],[0,1,0,1],[1,1,1,1]],
# V = [[.1,.2,.3,.4],[.5,.6,.7,.8],[.9,1,1.1,1.2]].
EXPECTED = [
    [0.5, 0.6, 0.7, 0.8],
    [0.6067825579018218, 0.7067825579018219, 0.8067825579018219, 0.9067825579018218],
    [0.6456701308594974, 0.7456701308594975, 0.8456701308594975, 0.9456701308594974],
]
PHONES = ["AE1", "AH0", "F", "IH1", "K", "S", "T", "Z"]
LETTERS = list("abcdefghijklmnopqrstuvwxyz")


def run(script: Path, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, str(script), *args], cwd=cwd, capture_output=True, text=True, encoding="utf-8", timeout=TIMEOUT
    )
    assert result.returncode == 0, f"{script.name} {args} failed:\n{result.stdout}\n{result.stderr}"
    return result


def printed_matrix(stdout: str, title: str) -> list[list[float]]:
    """The rows printed (one JSON list per indented line) right after the line `title`."""
    lines = stdout.splitlines()
    start = lines.index(title) + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("  ["):
            break
        rows.append(json.loads(line))
    return rows


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from IHDR, after checking that the file is a complete, uncorrupted PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r} chunk"
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", chunks[0][1][:10])
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour_type]  # matplotlib writes RGBA, but accept any non-palette type
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + width * channels * bit_depth // 8), "pixel data does not match IHDR"
    return width, height


# -- attention_walkthrough.py -------------------------------------------------------------------------------------


def test_walkthrough_prints_the_course_numbers_and_valid_weights():
    stdout = run(WALKTHROUGH).stdout
    output = printed_matrix(stdout, "Attention(Q, K, V) (float64):")
    assert len(output) == 3
    for row, expected_row in zip(output, EXPECTED, strict=True):
        assert row == pytest.approx(expected_row, abs=1e-12, rel=0)

    weights = printed_matrix(stdout, "attention weights (float64, each row sums to 1):")
    assert len(weights) == 3
    for row in weights:
        assert math.fsum(row) == pytest.approx(1.0, abs=1e-12)
    # Closed form: scores QKᵀ/2 are [[1,0,1],[0,1,1],[1,1,2]], so row 0 is (e, 1, e) / (2e + 1).
    e = math.e
    assert weights[0] == pytest.approx([e / (2 * e + 1), 1 / (2 * e + 1), e / (2 * e + 1)], abs=1e-15)
    assert weights[2] == pytest.approx([1 / (2 + e), 1 / (2 + e), e / (2 + e)], abs=1e-15)

    # The multi-head layer part: per-head shape, rows summing to 1, the layer equal to the function, causal zeros.
    assert "per-head weights shape (batch, heads, queries, keys): (1, 4, 10, 10)" in stdout
    for label in ("every row sums to 1", "rows still sum to 1"):
        (value,) = re.findall(re.escape(label) + r": max \|row sum - 1\| = (\S+)", stdout)
        assert float(value) < 1e-12
    (layer_diff,) = re.findall(r"layer == heads by hand with the same function: max \|difference\| = (\S+)", stdout)
    assert float(layer_diff) < 1e-12
    (future,) = re.findall(r"weights on future positions: max = (\S+)", stdout)
    assert float(future) == 0.0
    causal = printed_matrix(stdout, "head 0, causal weights for 'the cat sat on':")
    assert len(causal) == 4
    for i, row in enumerate(causal):
        assert all(w == 0.0 for w in row[i + 1 :]) and all(w > 0.0 for w in row[: i + 1])
        assert math.fsum(row) == pytest.approx(1.0, abs=1e-12)


# -- plot_attention.py ----------------------------------------------------------------------------------------------


def g2p_tokenizer(split_letters: bool) -> PreTrainedTokenizerFast:
    """A tiny G2P tokenizer: WordLevel over one vocabulary of letters and phones, specials <pad> <s> </s> <unk>.
    Unlike the G2P task's tokenizer it can also read letters space-separated: the script must handle both."""
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for token in LETTERS + PHONES:
        vocab[token] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    # Either each character is a token ("cat"), or letters arrive space-separated ("c a t"): the script handles both.
    tokenizer.pre_tokenizer = (
        pre_tokenizers.Split(Regex("."), behavior="isolated") if split_letters else pre_tokenizers.WhitespaceSplit()
    )
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


@pytest.fixture(scope="module")
def tiny_g2p_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny_g2p")
    return save_tiny_g2p(folder, g2p_tokenizer(split_letters=True), num_heads=2)  # 2 x 2 panels: fast


def test_plot_cross_attention_writes_png_of_the_documented_size(tiny_g2p_dir, tmp_path):
    output = tmp_path / "cross.png"
    args = (str(tiny_g2p_dir), "Physics", "--output", str(output), "--dpi", "40", "--panel_size", "2")
    result = run(PLOT, *args, "--max_new_tokens", "6")
    assert f"wrote {output}" in result.stdout
    # Documented: (heads x panel + 1) by (layers x panel + 0.8) inches; this model has 2 heads and 2 decoder layers.
    assert png_size(output) == ((2 * 2 + 1) * 40, round((2 * 2 + 0.8) * 40))


def test_plot_positional_encoding_writes_png_without_a_model(tmp_path, capsys):
    output = tmp_path / "pe.png"
    load_script(PLOT).main(["--pe", "--output", str(output), "--dpi", "50", "--d_model", "64", "--positions", "40"])
    assert capsys.readouterr().out == f"wrote {output}\n"
    assert png_size(output) == (10 * 50, 6 * 50)  # documented: 10 x 6 inches


def test_the_committed_positional_encoding_picture_is_a_valid_png():
    assert png_size(ROOT / "docs" / "positional_encoding.png") == (1000, 600)


@pytest.mark.parametrize("split_letters", [True, False], ids=["char-split", "space-separated"])
def test_plotted_weights_are_the_ones_generate_computes(tmp_path, split_letters):
    plot = load_script(PLOT)
    folder = save_tiny_g2p(tmp_path, g2p_tokenizer(split_letters), decoder_layers=3)
    model, tokenizer = plot.load_model_and_tokenizer(str(folder))
    assert isinstance(tokenizer, type(AutoTokenizer.from_pretrained(folder)))
    weights, letters, phones = plot.cross_attention(model.double(), tokenizer, "Cats", max_new_tokens=5)
    assert letters == ["c", "a", "t", "s", "</s>"]
    assert weights.shape == (3, 4, len(phones), len(letters))
    assert weights.sum(-1) == pytest.approx(1.0, abs=1e-12)

    # Independent route: step-by-step greedy generation with a cache, its attentions returned by generate.
    source = torch.tensor([tokenizer.convert_tokens_to_ids(letters)])
    out = model.generate(
        input_ids=source, max_new_tokens=5, do_sample=False, num_beams=1,
        output_attentions=True, return_dict_in_generate=True,
    )  # fmt: skip
    assert tokenizer.convert_ids_to_tokens(out.sequences[0, 1:].tolist()) == phones
    # cross_attentions: one tuple per step, of one (1, heads, 1, source) tensor per layer.
    stepwise = torch.cat([torch.stack(step)[:, 0] for step in out.cross_attentions], dim=2)  # (layers, heads, n, S)
    assert weights == pytest.approx(stepwise.numpy(), abs=1e-10)


def test_plot_errors_name_the_problem_and_the_fix(tiny_g2p_dir, tmp_path, capsys):
    plot = load_script(PLOT)
    with pytest.raises(SystemExit, match=r"letter\(s\) \['4'\].*it knows: abcdefghijklmnopqrstuvwxyz"):
        plot.main([str(tiny_g2p_dir), "c4t", "--output", str(tmp_path / "x.png")])
    with pytest.raises(SystemExit, match="is not a folder"):
        plot.main([str(tmp_path / "missing"), "cat"])
    empty = tmp_path / "no_tokenizer"
    hf_minimal.MinimalTransformerForConditionalGeneration(
        hf_minimal.MinimalTransformerConfig(vocab_size=40, d_model=8, encoder_layers=1, decoder_layers=1, num_heads=2)
    ).save_pretrained(empty)
    with pytest.raises(SystemExit, match=r"tokenizer must be saved beside the model"):
        plot.main([str(empty), "cat"])
    with pytest.raises(SystemExit) as usage:
        plot.main([str(tiny_g2p_dir)])
    assert usage.value.code == 2 and "pass MODEL_DIR and WORD" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_plot_without_matplotlib_says_how_to_install_it():
    # sys.modules[name] = None makes `import name` raise ImportError, as if matplotlib were not installed.
    code = (
        "import runpy, sys; sys.modules['matplotlib'] = None; sys.argv = ['plot_attention.py', '--pe'];"
        f"runpy.run_path({str(PLOT)!r}, run_name='__main__')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 1
    assert 'pip install "hf-minimal[plot]"' in result.stderr


# -- plot_training_curve.py -----------------------------------------------------------------------------------------

CURVE = EXAMPLES / "g2p" / "plot_training_curve.py"


def fake_results(folder: Path, curve: list[tuple[float, int, float]], test_wer: float = 30.0) -> Path:
    """A results.json as examples/g2p/train_g2p.py writes it, reduced to what the plot reads."""
    folder.mkdir(parents=True, exist_ok=True)
    points = [{"seconds": t, "step": n, "wer": w} for t, n, w in curve]
    results = {
        "train": {"global_step": curve[-1][1], "validation_curve": points},
        "recipe": {"max_eval_samples": 1000},
        "test": {"beam1": {"per": 7.0, "wer": test_wer, "words": 6295, "seconds": 3.0}},
        "job_seconds": curve[-1][0] + 20,
    }  # fmt: skip
    (folder / "results.json").write_text(json.dumps(results))
    return folder


def test_training_curve_plots_minutes_against_wer_with_the_test_point_and_baselines(tmp_path):
    plot = load_script(CURVE)
    a = plot.read_results(str(fake_results(tmp_path / "a", [(60, 1000, 60.0), (300, 5000, 40.0), (780, 13000, 31.0)])))
    b = plot.read_results(str(fake_results(tmp_path / "b", [(90, 1000, 70.0)]) / "results.json"))  # the file itself
    fig = plot.draw([a, b], ["A", "B"], [("Phonetisaurus (test)", 25.53)])
    ax = fig.axes[0]
    curve_a, test_a, curve_b, _, baseline = ax.lines
    assert list(curve_a.get_xdata()) == [1.0, 5.0, 13.0] and list(curve_a.get_ydata()) == [60.0, 40.0, 31.0]
    assert list(test_a.get_xdata()) == [(780 + 20) / 60] and list(test_a.get_ydata()) == [30.0]
    assert list(curve_b.get_xdata()) == [1.5] and list(baseline.get_ydata()) == [25.53, 25.53]
    assert "(1,000 words), 13,000 steps" in curve_a.get_label() and "test (6,295 words) 30.00%" in test_a.get_label()
    output = tmp_path / "ttq.png"
    plot.main([str(tmp_path / "a"), "--baseline", "P=25.5", "--output", str(output), "--dpi", "30"])
    assert png_size(output) == (8 * 30, 5 * 30)  # documented: FIGSIZE 8 x 5 inches


def test_the_committed_time_to_quality_picture_is_a_valid_png():
    assert png_size(ROOT / "docs" / "time_to_quality.png") == (800, 500)


def test_training_curve_refuses_runs_without_a_curve_and_bad_arguments(tmp_path, capsys):
    plot = load_script(CURVE)
    old = tmp_path / "old"
    old.mkdir()
    (old / "results.json").write_text(json.dumps({"train": {"global_step": 5}}))
    with pytest.raises(SystemExit, match=r"no train\.validation_curve"):
        plot.main([str(old)])
    with pytest.raises(SystemExit, match=r"No results\.json"):
        plot.main([str(tmp_path / "missing")])
    run_dir = fake_results(tmp_path / "ok", [(60, 1000, 60.0)])
    with pytest.raises(SystemExit, match="1 --label for 2 runs"):
        plot.main([str(run_dir), str(run_dir), "--label", "x"])
    with pytest.raises(SystemExit) as usage:
        plot.main([str(run_dir), "--baseline", "25.5"])
    assert usage.value.code == 2 and "takes NAME=WER" in capsys.readouterr().err


# -- docs/tour.md ---------------------------------------------------------------------------------------------------

CODE_LINK = re.compile(r"\[`([^`]+)`\]\(([^)#]+\.py)#L(\d+)\)")


def defines(lines: list[str], line_number: int, qualified_name: str) -> bool:
    """Whether line `line_number` (1-based) defines `qualified_name`: `def`/`class` NAME or NAME = / NAME:, and for
    Class.member, inside `class Class` (the nearest less-indented `class` line above it)."""
    *owners, name = qualified_name.split(".")
    line = lines[line_number - 1]
    if not re.match(rf"\s*(?:async\s+def|def|class)\s+{re.escape(name)}\b|\s*{re.escape(name)}\s*[:=]", line):
        return False
    indent = len(line) - len(line.lstrip())
    for owner in reversed(owners):
        if indent == 0:
            return False
        for above in reversed(lines[: line_number - 1]):
            above_indent = len(above) - len(above.lstrip())
            if above.strip() and above_indent < indent:
                if not re.match(rf"\s*class\s+{re.escape(owner)}\b", above):
                    return False
                line_number, indent = lines.index(above) + 1, above_indent
                break
    return indent == 0


def tour_files() -> list[Path]:
    """docs/tour.md always; README.md too if it ever holds code links."""
    readme = ROOT / "README.md"
    merged = readme.is_file() and CODE_LINK.search(readme.read_text(encoding="utf-8"))
    return [ROOT / "docs" / "tour.md", *([readme] if merged else [])]


def test_every_tour_link_points_at_the_line_that_defines_its_name():
    for doc in tour_files():
        text = doc.read_text(encoding="utf-8")
        links = CODE_LINK.findall(text)
        assert len(links) >= 20, f"{doc.name}: the Tour should link every part of the paper"
        assert len(links) == text.count(".py#L"), f"{doc.name}: a #L link is not in the [`name`](path#Lnn) form"
        stale = []
        for name, path, line in links:
            source = (doc.parent / path).read_text(encoding="utf-8").splitlines()
            if not defines(source, int(line), name):
                stale.append(f"{name} -> {path}#L{line}")
        assert not stale, f"{doc.name}: stale links {stale}; run python docs/tour_links.py to update them"


def test_tour_covers_each_part_of_the_paper_and_its_pictures():
    text = (ROOT / "docs" / "tour.md").read_text(encoding="utf-8")
    names = {name for name, _, _ in CODE_LINK.findall(text)}
    assert {
        "MinimalTransformerEncoder", "MinimalTransformerDecoder", "scaled_dot_product_attention",
        "MinimalTransformerAttention", "MinimalTransformerLayer.feed_forward", "MinimalTransformerStack.embed",
        "sinusoidal_position_encoding", "causal_mask", "padding_mask", "MinimalTransformerLayer.sublayer",
        "MinimalTransformerForConditionalGeneration._tied_weights_keys",
    } <= names  # fmt: skip
    for picture in ("positional_encoding.png", "cross_attention.png"):  # beside tour.md
        assert f"]({picture})" in text
    assert "python examples/learn/plot_attention.py --pe --output docs/positional_encoding.png" in text
    assert re.search(r"python examples/learn/plot_attention.py \S+ \w+ --output docs/cross_attention.png", text)


def test_tour_links_helper_repairs_drifted_line_numbers(tmp_path):
    helper = load_script(ROOT / "docs" / "tour_links.py")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "import math\n\n\ndef f():\n    pass\n\n\nclass A:\n    x: int = 1\n\n    def g(self):\n        pass\n"
    )
    text = "[`f`](pkg/m.py#L1) [`A`](pkg/m.py) [`A.x`](pkg/m.py#L9) [`A.g`](pkg/m.py#L3) [`A.nope`](pkg/m.py#L2)"
    fixed, problems = helper.resolve(text, root=tmp_path)
    assert fixed == "[`f`](pkg/m.py#L4) [`A`](pkg/m.py#L8) [`A.x`](pkg/m.py#L9) [`A.g`](pkg/m.py#L11) " + (
        "[`A.nope`](pkg/m.py#L2)"
    )
    assert len(problems) == 4 and "A.nope is not defined in pkg/m.py" in problems
    doc = tmp_path / "tour.md"
    doc.write_text(text)
    assert helper.main([str(doc), "--check"]) == 1 and doc.read_text() == text  # --check never writes
