"""Bad input: each wrong value gets a ValueError that names the problem and the fix, or the model just works.

Config validation of single fields is in tests/test_auto.py; this file adds what it does not cover, then the model's
inputs (token ids, empty batches and sequences, fully padded rows, long inputs, float16/bfloat16).
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import EXAMPLES, ROOT, load_script, tiny_config
from huggingface_hub.errors import StrictDataclassClassValidationError, StrictDataclassFieldValidationError
from limits import TIMEOUT
from transformers import AutoConfig

from hf_minimal import MinimalTransformerConfig, MinimalTransformerForConditionalGeneration, MinimalTransformerModel
from hf_minimal import scaled_dot_product_attention as attention

V = 23  # tiny_config's vocab_size


def _model(seed: int = 0, **overrides) -> MinimalTransformerForConditionalGeneration:
    torch.manual_seed(seed)
    return MinimalTransformerForConditionalGeneration(tiny_config(**overrides)).eval()


# ---------------------------------------------------------------- config values test_auto.py does not try


@pytest.mark.parametrize(
    ("kwargs", "field", "allowed"),
    [
        ({"decoder_layers": 0}, "decoder_layers", "positive integer"),
        ({"dropout": -0.1}, "dropout", r"\[0, 1\)"),
        ({"attention_dropout": 1.5}, "attention_dropout", r"\[0, 1\)"),
        ({"init_std": 0.0}, "init_std", "positive number"),
        ({"init_std": -1.0}, "init_std", "positive number"),
        ({"layer_norm_eps": -1e-5}, "layer_norm_eps", "positive number"),
        ({"max_position_embeddings": 0}, "max_position_embeddings", "positive integer"),
        ({"num_heads": 0}, "num_heads", "positive integer"),  # not a ZeroDivisionError in the d_model check
        ({"bos_token_id": 40, "vocab_size": 40}, "bos_token_id", r"\[0, vocab_size=40\)"),
        ({"eos_token_id": [2, 99], "vocab_size": 40}, "eos_token_id", r"\[0, vocab_size=40\)"),  # each id checked
        ({"hidden_size": 30, "num_attention_heads": 4}, "d_model", "multiple of num_heads=4"),  # aliases too
        ({"activation": "tanhh"}, "activation", "ACT2FN"),
    ],
)
def test_more_invalid_config_values_name_field_value_and_what_is_allowed(kwargs, field, allowed):
    """Values of the right type that break a rule: a `validate_*` method names the field, the value and the rule."""
    with pytest.raises(StrictDataclassClassValidationError, match=rf"{field}=.* is invalid; it must be .*{allowed}"):
        MinimalTransformerConfig(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field", "message"),
    [
        ({"d_model": 16.0}, "d_model", r"expected int, got float \(value: 16\.0\)"),
        ({"num_heads": True}, "num_heads", r"expected int, got bool"),  # bool is an int subclass, still not a count
        ({"vocab_size": "37000"}, "vocab_size", r"expected int, got str \(value: '37000'\)"),
        ({"dropout": "0.1"}, "dropout", r"value '0\.1' doesn't match any type in .*float.*int"),
        ({"max_position_embeddings": 1.5}, "max_position_embeddings", r"expected int, got float \(value: 1\.5\)"),
        ({"decoder_start_token_id": 3.0}, "decoder_start_token_id", r"value 3\.0 doesn't match any type"),
        ({"activation": None}, "activation", r"expected str, got NoneType"),
        ({"eos_token_id": [2, "3"]}, "eos_token_id", r"doesn't match any type"),
    ],
)
def test_config_values_of_the_wrong_type_name_field_type_and_value(kwargs, field, message):
    """As for transformers' built-in configs, `@strict` checks each field's declared type when it is set."""
    with pytest.raises(StrictDataclassFieldValidationError, match=rf"Validation error for field '{field}'"):
        MinimalTransformerConfig(**kwargs)
    with pytest.raises(StrictDataclassFieldValidationError, match=message):
        MinimalTransformerConfig(**kwargs)


def test_rules_are_checked_again_when_saving(tmp_path):
    config = MinimalTransformerConfig(d_model=16, num_heads=4)
    config.num_heads = 3  # an int: @strict accepts the assignment, the rule between fields is checked on save
    with pytest.raises(StrictDataclassClassValidationError, match=r"d_model=16 is invalid; it must be a multiple"):
        config.save_pretrained(tmp_path)
    with pytest.raises(StrictDataclassFieldValidationError, match=r"expected int, got str"):
        config.num_heads = "4"


def test_invalid_value_in_a_config_json_fails_at_load_naming_the_field(tmp_path):
    MinimalTransformerConfig(d_model=16, num_heads=4).save_pretrained(tmp_path)
    path = tmp_path / "config.json"
    path.write_text(path.read_text().replace('"num_heads": 4', '"num_heads": 3'))
    with pytest.raises(StrictDataclassClassValidationError, match=r"d_model=16 is invalid; it must be a multiple of"):
        MinimalTransformerConfig.from_pretrained(tmp_path)


# A config.json written by the previous, hand-validated version of the class (the main job's, 2026-12-02).
CONFIG_JSON_2026_12_02 = {
    "activation": "relu",
    "architectures": ["MinimalTransformerForConditionalGeneration"],
    "attention_dropout": 0.0,
    "auto_map": {
        "AutoConfig": "configuration_minimal_transformer.MinimalTransformerConfig",
        "AutoModel": "modeling_minimal_transformer.MinimalTransformerModel",
        "AutoModelForSeq2SeqLM": "modeling_minimal_transformer.MinimalTransformerForConditionalGeneration",
    },
    "bos_token_id": 1,
    "d_ff": 512,
    "d_model": 128,
    "decoder_layers": 1,
    "decoder_start_token_id": 1,
    "dropout": 0.0,
    "dtype": "float32",
    "encoder_layers": 3,
    "eos_token_id": 2,
    "init_std": 0.08838834764831845,
    "is_encoder_decoder": True,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 128,
    "model_type": "minimal_transformer",
    "norm_first": False,
    "num_heads": 4,
    "pad_token_id": 0,
    "scale_embedding": True,
    "tie_word_embeddings": True,
    "transformers_version": "5.24.0",
    "use_cache": False,
    "vocab_size": 72,
}


def test_a_config_json_of_the_previous_version_loads_unchanged(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(CONFIG_JSON_2026_12_02))
    config = AutoConfig.from_pretrained(tmp_path)
    assert type(config) is MinimalTransformerConfig
    fields = {k: v for k, v in CONFIG_JSON_2026_12_02.items() if k not in ("dtype", "transformers_version", "auto_map")}
    assert {k: getattr(config, k) for k in fields} == fields
    config.save_pretrained(tmp_path / "again")
    saved = json.loads((tmp_path / "again" / "config.json").read_text())
    assert {k: saved[k] for k in fields if k in saved} == {k: v for k, v in fields.items() if k in saved}


def test_valid_edge_values_are_accepted():
    cfg = MinimalTransformerConfig(
        vocab_size=1,
        d_model=2,
        num_heads=1,
        d_ff=1,
        dropout=0.0,
        pad_token_id=0,
        bos_token_id=None,
        eos_token_id=None,
        decoder_start_token_id=0,
    )
    assert cfg.init_std == 2**-0.5


# ---------------------------------------------------------------- token ids outside the vocabulary


@pytest.mark.parametrize("bad", [V, V + 100, -1])
@pytest.mark.parametrize("where", ["input_ids", "decoder_input_ids"])
def test_out_of_vocabulary_ids_raise_value_error_naming_the_input(where, bad):
    model = _model()
    ok = torch.tensor([[5, 6, 7, 2]])
    wrong = torch.tensor([[5, bad, 7, 2]])
    inputs = {"input_ids": ok, "decoder_input_ids": ok, where: wrong}
    with pytest.raises(
        ValueError,
        match=rf"^{where}: token id {bad} is outside the vocabulary \[0, {V}\)\. "
        r"Encode the text with the model's own tokenizer, or resize the embeddings",
    ):
        model(**inputs)


@pytest.mark.parametrize("bad", [V, -5])
@pytest.mark.parametrize("position", [0, 2])  # 2 is the last label, which never reaches the decoder input
def test_out_of_vocabulary_labels_raise_value_error_naming_labels(bad, position):
    model = _model()
    labels = torch.tensor([[5, 6, 7]])
    labels[0, position] = bad
    with pytest.raises(ValueError, match=rf"^labels \(-100 = ignored\): token id {bad} is outside the vocabulary"):
        model(input_ids=torch.tensor([[5, 6, 2]]), labels=labels)


def test_ids_equal_to_vocab_size_minus_one_and_minus_100_labels_are_fine():
    model = _model()
    out = model(input_ids=torch.tensor([[V - 1, 0]]), labels=torch.tensor([[V - 1, -100]]))
    assert torch.isfinite(out.loss)


def test_bad_ids_are_reported_by_generate_and_by_the_base_model():
    with pytest.raises(ValueError, match=r"^input_ids: token id 99 "):
        _model().generate(torch.tensor([[5, 99, 2]]), max_new_tokens=2)
    torch.manual_seed(0)
    base = MinimalTransformerModel(tiny_config())
    with pytest.raises(ValueError, match=r"^decoder_input_ids: token id -3 "):
        base(torch.tensor([[5, 2]]), decoder_input_ids=torch.tensor([[1, -3]]))


def test_resized_embeddings_move_the_limit():
    model = _model()
    model.resize_token_embeddings(V + 5)
    ids = torch.tensor([[V + 4, 2]])
    assert model(input_ids=ids, labels=ids).logits.shape == (1, 2, V + 5)
    with pytest.raises(ValueError, match=rf"token id {V + 5} is outside the vocabulary \[0, {V + 5}\)"):
        model(input_ids=torch.tensor([[V + 5]]), decoder_input_ids=ids)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bool])
def test_non_integer_ids_raise_value_error(dtype):
    with pytest.raises(ValueError, match=rf"^input_ids must hold integer token ids \(torch.long\), not {dtype}"):
        _model()(input_ids=torch.tensor([[1, 0]]).to(dtype), decoder_input_ids=torch.tensor([[1]]))
    with pytest.raises(ValueError, match=r"^labels .* must hold integer token ids"):
        _model()(input_ids=torch.tensor([[5, 2]]), labels=torch.tensor([[1, 0]]).to(dtype))


def test_int32_ids_work_like_int64():
    model, ids = _model(), torch.tensor([[5, 6, 2]])
    torch.testing.assert_close(
        model(input_ids=ids.int(), decoder_input_ids=ids.int()).logits,
        model(input_ids=ids, decoder_input_ids=ids).logits,
        rtol=0,
        atol=0,
    )


def test_passing_both_or_neither_of_ids_and_embeddings_is_a_clear_error():
    model = _model()
    ids = torch.tensor([[5, 6]])
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(input_ids=ids, inputs_embeds=torch.zeros(1, 2, 16), decoder_input_ids=ids)
    with pytest.raises(ValueError, match="exactly one of input_ids or inputs_embeds"):
        model(decoder_input_ids=ids)
    with pytest.raises(ValueError, match=r"needs decoder_input_ids .* MinimalTransformerForConditionalGeneration"):
        model.model(input_ids=ids)


def test_decoder_mask_of_the_wrong_length_is_a_clear_error():
    with pytest.raises(ValueError, match=r"decoder_attention_mask covers 2 positions, but the decoder sees 3"):
        _model()(
            input_ids=torch.tensor([[5, 2]]),
            decoder_input_ids=torch.tensor([[1, 5, 6]]),
            decoder_attention_mask=torch.tensor([[1, 1]]),
        )


# ---------------------------------------------------------------- empty batches and length-0 sequences


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_empty_batch_gives_empty_outputs(attn):
    model = _model()
    model.set_attn_implementation(attn)
    src, tgt = torch.zeros(0, 4, dtype=torch.long), torch.zeros(0, 3, dtype=torch.long)
    out = model(input_ids=src, attention_mask=torch.ones_like(src), decoder_input_ids=tgt)
    assert out.logits.shape == (0, 3, V) and out.encoder_last_hidden_state.shape == (0, 4, 16)


def test_empty_batch_loss_is_nan_with_zero_gradients():
    # cross_entropy's mean over zero labelled tokens is 0/0; the gradient is zero, so a step changes nothing.
    model = _model().train()
    out = model(input_ids=torch.zeros(0, 4, dtype=torch.long), labels=torch.zeros(0, 3, dtype=torch.long))
    out.loss.backward()
    assert math.isnan(out.loss.item())
    assert all(torch.all(p.grad == 0) for p in model.parameters() if p.grad is not None)


def test_all_labels_ignored_gives_zero_gradients_not_nan_gradients():
    model = _model().train()
    loss = model(input_ids=torch.tensor([[5, 6, 2]]), labels=torch.full((1, 3), -100)).loss
    loss.backward()
    assert math.isnan(loss.item())  # 0/0, as torch's cross_entropy; the zero gradients make the step harmless
    assert all(torch.all(p.grad == 0) for p in model.parameters())


def test_generate_on_an_empty_batch_fails_inside_transformers():
    # transformers 5.24's stopping check calls .max() on the empty `unfinished_sequences`: not ours to patch;
    # docs/reliability.md tells users to skip generate when there is nothing to generate for.
    with pytest.raises(RuntimeError, match=r"max\(\)"):
        _model().generate(torch.zeros(0, 3, dtype=torch.long), max_new_tokens=2)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_length_0_source_equals_a_fully_padded_source(attn):
    model = _model().double()
    model.set_attn_implementation(attn)
    tgt = torch.tensor([[1, 5, 6]])
    empty = model(input_ids=torch.zeros(1, 0, dtype=torch.long), decoder_input_ids=tgt).logits
    padded = model(
        input_ids=torch.zeros(1, 3, dtype=torch.long),
        attention_mask=torch.zeros(1, 3, dtype=torch.long),
        decoder_input_ids=tgt,
    ).logits
    assert torch.isfinite(empty).all()
    torch.testing.assert_close(empty, padded, rtol=0, atol=1e-12)


def test_length_0_decoder_input_and_labels_give_empty_logits():
    model, src = _model(), torch.tensor([[5, 6, 2]])
    assert model(input_ids=src, decoder_input_ids=torch.zeros(1, 0, dtype=torch.long)).logits.shape == (1, 0, V)
    out = model(input_ids=src, labels=torch.zeros(1, 0, dtype=torch.long))
    assert out.logits.shape == (1, 0, V)


def test_generate_from_a_length_0_source_still_generates():
    tokens = _model().generate(torch.zeros(1, 0, dtype=torch.long), max_new_tokens=3, do_sample=False)
    assert tokens.shape == (1, 4) and tokens[0, 0] == 1  # decoder_start_token_id then 3 tokens


# ---------------------------------------------------------------- fully padded rows, long inputs, half precision


def _padded_batch():
    """Row 0 full, row 1 partly padded, row 2 entirely padding (source, decoder input and labels)."""
    src = torch.tensor([[5, 6, 7, 2], [8, 2, 0, 0], [0, 0, 0, 0]])
    labels = torch.tensor([[5, 6, 2], [9, 2, -100], [-100, -100, -100]])
    decoder_mask = torch.tensor([[1, 1, 1], [1, 1, 0], [0, 0, 0]])
    return src, (src != 0).long(), labels, decoder_mask


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_fully_padded_row_has_no_nan_forward_or_backward(attn, norm_first):
    model = _model(norm_first=norm_first).train()
    model.set_attn_implementation(attn)
    src, mask, labels, decoder_mask = _padded_batch()
    out = model(
        input_ids=src,
        attention_mask=mask,
        labels=labels,
        decoder_attention_mask=decoder_mask,
        output_hidden_states=True,
    )
    out.loss.backward()
    assert torch.isfinite(out.loss) and torch.isfinite(out.logits).all()
    assert all(torch.isfinite(h).all() for h in out.encoder_hidden_states + out.decoder_hidden_states)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    # The fully padded row contributes nothing: the loss and the gradients equal those of rows 0 and 1 alone.
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    two = model(input_ids=src[:2], attention_mask=mask[:2], labels=labels[:2], decoder_attention_mask=decoder_mask[:2])
    two.loss.backward()
    torch.testing.assert_close(out.loss, two.loss, rtol=0, atol=1e-6)
    for grad, p in zip(grads, model.parameters(), strict=True):
        torch.testing.assert_close(grad, p.grad, rtol=0, atol=1e-6)


def test_attention_weights_of_a_fully_padded_row_are_zero():
    model = _model()
    src, mask, _, _ = _padded_batch()
    out = model(
        input_ids=src, attention_mask=mask, decoder_input_ids=torch.tensor([[1, 5]] * 3), output_attentions=True
    )
    assert torch.all(out.encoder_attentions[0][2] == 0) and torch.all(out.cross_attentions[0][2] == 0)
    torch.testing.assert_close(out.cross_attentions[0][:2].sum(-1), torch.ones(2, 4, 2))


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_inputs_longer_than_max_position_embeddings_work_and_match_a_larger_table(attn):
    model = _model()  # max_position_embeddings=16
    model.set_attn_implementation(attn)
    g = torch.Generator().manual_seed(0)
    src, tgt = torch.randint(3, V, (2, 40), generator=g), torch.randint(3, V, (2, 37), generator=g)
    out = model(input_ids=src, decoder_input_ids=tgt).logits
    bigger = MinimalTransformerForConditionalGeneration(tiny_config(max_position_embeddings=64)).eval()
    bigger.load_state_dict(model.state_dict())
    bigger.set_attn_implementation(attn)
    assert out.shape == (2, 37, V) and torch.isfinite(out).all()
    torch.testing.assert_close(out, bigger(input_ids=src, decoder_input_ids=tgt).logits, rtol=0, atol=1e-5)
    tokens = model.generate(src[:1, :20], max_new_tokens=25, min_new_tokens=25)  # cached decoding past 16 too
    assert tokens.shape == (1, 26)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_half_precision_forward_and_backward_with_padding_are_finite_and_close_to_float32(dtype, attn):
    model32 = _model().train()
    model = _model().to(dtype).train()
    for m in (model, model32):
        m.set_attn_implementation(attn)
    src, mask, labels, decoder_mask = _padded_batch()
    kwargs = dict(input_ids=src, attention_mask=mask, labels=labels, decoder_attention_mask=decoder_mask)
    out, ref = model(**kwargs, output_attentions=attn == "eager"), model32(**kwargs)
    out.loss.backward()
    assert out.logits.dtype == dtype and torch.isfinite(out.logits).all() and torch.isfinite(out.loss)
    assert all(p.grad.dtype == dtype and torch.isfinite(p.grad).all() for p in model.parameters())
    tol = 0.05 if dtype == torch.float16 else 0.3  # bf16 keeps 8 mantissa bits
    assert abs(out.loss.item() - ref.loss.item()) < tol
    if attn == "eager":
        rows = out.encoder_attentions[0][:2].float().sum(-1)
        torch.testing.assert_close(rows, torch.ones_like(rows), rtol=0, atol=1e-2)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mask_fill_is_the_dtype_minimum_and_large_scores_do_not_overflow(dtype):
    # Scores near the dtype's maximum, then masked: the dtype's minimum as fill value keeps every number finite.
    big = math.sqrt(torch.finfo(dtype).max) * 0.4  # q·k = 0.64 × max
    q = torch.full((1, 1, 2, 4), big, dtype=dtype)
    k = torch.full((1, 1, 3, 4), big, dtype=dtype)
    v = torch.arange(12, dtype=dtype).view(1, 1, 3, 4)
    mask = torch.tensor([[True, True, False], [False, False, False]])
    out, weights = attention(q, k, v, mask)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert weights[0, 0, 0, 2] == 0 and torch.all(weights[0, 0, 1] == 0)
    torch.testing.assert_close(weights[0, 0, 0, :2].float(), torch.tensor([0.5, 0.5]), rtol=0, atol=1e-3)
    tokens = (
        _model()
        .to(dtype)
        .generate(
            torch.tensor([[5, 6, 2], [7, 2, 0]]), attention_mask=torch.tensor([[1, 1, 1], [1, 1, 0]]), max_new_tokens=4
        )
    )
    assert tokens.shape[0] == 2


# ---------------------------------------------------------------- G2P command line: odd words never crash it

PREDICT = EXAMPLES / "g2p" / "predict_g2p.py"
ODD_WORDS = ["hello", "HELLO", "Hello", "abc123", "don't", "well-known", "a.b.", "café", "naïve", "日本", "!!!", "😀"]


@pytest.fixture(scope="module")
def g2p_dir(tmp_path_factory) -> Path:
    """A G2P model folder as train_g2p.py writes it (config, weights, tokenizer), with a tiny untrained model."""
    from hf_minimal import g2p

    tokenizer = g2p.build_tokenizer()
    config = MinimalTransformerConfig(
        vocab_size=len(tokenizer), d_model=16, num_heads=2, d_ff=32, encoder_layers=1, decoder_layers=1, dropout=0.0
    )
    path = tmp_path_factory.mktemp("g2p") / "model"
    torch.manual_seed(0)
    MinimalTransformerForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _predict(capsys, *argv: str) -> tuple[int, list[str], str]:
    """examples/g2p/predict_g2p.py's main() in this process: (exit code, stdout lines, stderr)."""
    module = load_script(PREDICT)
    try:
        code = module.main(list(argv))
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def test_predict_gives_one_line_per_odd_word_and_notes_unknown_characters(g2p_dir, capsys):
    from hf_minimal import g2p

    code, lines, err = _predict(capsys, str(g2p_dir), *ODD_WORDS, "SH", "sh", "two words", "--num_beams", "2")
    assert code == 0, err
    words = [w.lower() for w in ODD_WORDS] + ["sh", "sh", "two", "words"]
    assert [line.split()[0] for line in lines] == words
    phones = {line.split()[0]: line.split()[1:] for line in lines}
    vocabulary = set(g2p.GRAPHEMES) | set(g2p.phone_inventory())
    assert all(set(p) <= vocabulary for p in phones.values())
    assert lines[0] == lines[1] == lines[2]  # hello, HELLO, Hello: one input after lower-casing
    assert lines[-4] == lines[-3]  # "SH" is lower-cased too, so it is spelled, not read as the phone SH
    for word, odd in (
        ("abc123", "1 2 3"),
        ("café", "é"),
        ("naïve", "ï"),
        ("日本", "日 本"),
        ("!!!", "!"),
        ("😀", "😀"),
    ):
        assert f"note: {word!r} has characters outside the model's alphabet ({odd}); they read as <unk>." in err
    assert "hello" not in err and "don't" not in err and "well-known" not in err and "a.b." not in err


@pytest.mark.parametrize("argv", [[""], ["   "], ["\t", ""]])
def test_predict_without_words_says_so(g2p_dir, capsys, argv):
    code, lines, err = _predict(capsys, str(g2p_dir), *argv)
    assert (code, lines) == (2, [])
    assert "No words given: pass one or more words" in err


def test_predict_skips_empty_arguments_beside_words_and_handles_a_very_long_word(g2p_dir, capsys):
    long_word = "abcdefghijk" * 13  # 143 letters, past the tokenizer's model_max_length of 128
    code, lines, err = _predict(capsys, str(g2p_dir), "", "x", long_word, "--num_beams", "1")
    assert code == 0, err
    assert [line.split()[0] for line in lines] == ["x", long_word]


def test_predict_rejects_zero_beams(g2p_dir, capsys):
    code, lines, err = _predict(capsys, str(g2p_dir), "hello", "--num_beams", "0")
    assert (code, lines) == (2, []) and "--num_beams must be at least 1" in err


@pytest.mark.parametrize(
    "damage",
    [
        "no folder",
        "truncated model.safetensors",
        "no config.json",
        "no tokenizer.json",
        "truncated tokenizer.json",
        "no tokenizer_config.json",
    ],
)
def test_predict_on_a_damaged_folder_names_the_problem_without_a_traceback(g2p_dir, tmp_path, capsys, damage):
    path = tmp_path / "model"
    if damage != "no folder":
        path.mkdir()
        for f in g2p_dir.iterdir():
            (path / f.name).write_bytes(f.read_bytes())
    if damage == "truncated model.safetensors":
        (path / "model.safetensors").write_bytes((g2p_dir / "model.safetensors").read_bytes()[:1000])
    elif damage == "truncated tokenizer.json":
        (path / "tokenizer.json").write_text((g2p_dir / "tokenizer.json").read_text()[:100])
    elif damage != "no folder":
        (path / damage[3:]).unlink()
    code, lines, err = _predict(capsys, str(path), "hello", "world")  # two words: padding needs the pad token
    assert (code, lines) == (1, [])
    assert err.startswith(f"Cannot load a model from {str(path)!r}: ") and "Traceback" not in err
    named = {"no folder": str(path), "truncated model.safetensors": f"{path}/model.safetensors is damaged"}
    assert named.get(damage, damage.split()[-1]) in err


def test_predict_names_an_invalid_config_json(g2p_dir, tmp_path, capsys):
    path = tmp_path / "model"
    path.mkdir()
    for f in g2p_dir.iterdir():
        (path / f.name).write_bytes(f.read_bytes())
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "num_heads": 3}))
    code, lines, err = _predict(capsys, str(path), "hello")
    assert (code, lines) == (1, []) and "Traceback" not in err
    assert (
        f"{path}/config.json is invalid" in err and "d_model=16 is invalid; it must be a multiple of num_heads=3" in err
    )


def test_predict_command_line_with_unicode_and_empty_arguments(g2p_dir):
    result = subprocess.run(
        [sys.executable, str(PREDICT), str(g2p_dir), "Ünïcödé", "", "ok", "--num_beams", "1"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        cwd=ROOT,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["ünïcödé", "ok"]
