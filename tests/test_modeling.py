"""Exactness of the model against the paper's formulas and an independent float64 NumPy implementation."""

import math

import numpy as np
import pytest
import torch
from conftest import tiny_config
from reference import Reference, positional_encoding
from reference import attention as np_attention

from hf_minimal import MinimalTransformerForConditionalGeneration, scaled_dot_product_attention
from hf_minimal import sinusoidal_position_encoding as pe_fn

SEED_Q = [[1.0, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]]
SEED_V = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.9, 1.0, 1.1, 1.2]]
SEED_OUT = [
    [0.5, 0.6, 0.7, 0.8],
    [0.6067825579018218, 0.7067825579018219, 0.8067825579018219, 0.9067825579018218],
    [0.6456701308594974, 0.7456701308594975, 0.8456701308594975, 0.9456701308594974],
]


def test_seed_vector_float64():
    q = torch.tensor(SEED_Q, dtype=torch.float64)
    out, weights = scaled_dot_product_attention(q, q, torch.tensor(SEED_V, dtype=torch.float64))
    torch.testing.assert_close(out, torch.tensor(SEED_OUT, dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-15)


def test_attention_matches_numpy_batched_and_masked():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 8, generator=g, dtype=torch.float64) * 3 for _ in range(3))
    mask = torch.rand(2, 1, 5, 5, generator=g) > 0.3
    mask[..., 0] = True  # every row keeps a key
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    expected = np_attention(q.numpy(), k.numpy(), v.numpy(), mask.numpy())
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-12)
    assert torch.all(weights[~mask.expand_as(weights)] == 0)


def test_attention_large_scores_do_not_overflow():
    q = torch.full((1, 4), 300.0)  # scores of 45000 would overflow exp() without the max subtraction
    out, _ = scaled_dot_product_attention(q, q.clone(), torch.eye(1, 4))
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_fully_masked_row_gives_zeros_not_nan(dtype):
    q = torch.randn(1, 2, 3, 4, dtype=torch.float32).to(dtype).requires_grad_()
    mask = torch.tensor([True, False, True])[None, None, :, None].expand(1, 1, 3, 3)  # row 1 sees nothing
    out, weights = scaled_dot_product_attention(q, q, q, mask)
    assert torch.all(out[:, :, 1] == 0) and torch.all(weights[:, :, 1] == 0)
    out.float().sum().backward()
    assert torch.isfinite(q.grad.float()).all()


def test_positional_encoding_formula():
    pe = pe_fn(50, 16, dtype=torch.float64)
    for pos in (0, 1, 7, 49):
        for i in range(8):
            angle = pos / 10000 ** (2 * i / 16)
            assert abs(pe[pos, 2 * i].item() - math.sin(angle)) < 1e-13
            assert abs(pe[pos, 2 * i + 1].item() - math.cos(angle)) < 1e-13
    assert pe_fn(3, 8).dtype == torch.float32
    with pytest.raises(ValueError, match="even"):
        pe_fn(3, 7)


def test_positional_encoding_is_a_non_persistent_buffer_that_extends(tiny_model):
    assert not any("embed_positions" in key for key in tiny_model.state_dict())
    module = tiny_model.model.encoder.embed_positions
    rows = module(start=10, length=20, dtype=torch.float64)  # past max_position_embeddings=16
    np.testing.assert_allclose(rows.numpy(), positional_encoding(30, 16)[10:], rtol=0, atol=1e-13)


def _random_batch(vocab: int, lengths: list[int], pad: int = 0, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.full((len(lengths), max(lengths)), pad)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(3, vocab, (n,), generator=g)
        mask[row, :n] = 1
    return ids, mask


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_logits_match_float64_numpy_reference(norm_first, attn):
    torch.manual_seed(1)
    cfg = tiny_config(norm_first=norm_first, max_position_embeddings=8)
    model = MinimalTransformerForConditionalGeneration(cfg).double().eval()
    model.set_attn_implementation(attn)
    # Randomise LayerNorms too, so the reference checks them rather than identities.
    for name, p in model.named_parameters():
        if "layer_norm" in name:
            p.data.uniform_(0.5, 1.5)
    src, src_mask = _random_batch(cfg.vocab_size, [12, 5])  # 12 > max_position_embeddings, and padding
    tgt, _ = _random_batch(cfg.vocab_size, [10, 10], seed=1)
    logits = model(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt).logits
    ref = Reference(model.state_dict(), cfg)
    for row, n in enumerate([12, 5]):
        expected = ref.logits(src[row, :n].tolist(), tgt[row].tolist())
        np.testing.assert_allclose(logits[row].detach().numpy(), expected, rtol=0, atol=1e-10)


def test_eager_and_sdpa_agree_float32_and_float64():
    torch.manual_seed(2)
    model = MinimalTransformerForConditionalGeneration(tiny_config()).eval()
    src, src_mask = _random_batch(23, [9, 4, 7])
    tgt, tgt_mask = _random_batch(23, [6, 6, 3], seed=3)
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-10)):
        model.to(dtype)
        outs = []
        for attn in ("eager", "sdpa"):
            model.set_attn_implementation(attn)
            out = model(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
            outs.append(out.logits[tgt_mask.bool()])
        torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=tol)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_padding_invariance(attn):
    torch.manual_seed(3)
    model = MinimalTransformerForConditionalGeneration(tiny_config()).double().eval()
    model.set_attn_implementation(attn)
    lengths, tgt_lengths = [7, 3, 5], [4, 6, 2]
    src, src_mask = _random_batch(23, lengths)
    tgt, tgt_mask = _random_batch(23, tgt_lengths, seed=5)
    batched = model(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    for row, (n, m) in enumerate(zip(lengths, tgt_lengths, strict=True)):
        alone = model(input_ids=src[row : row + 1, :n], decoder_input_ids=tgt[row : row + 1, :m]).logits[0]
        torch.testing.assert_close(batched.logits[row, :m], alone, rtol=0, atol=1e-10)
        torch.testing.assert_close(
            batched.encoder_last_hidden_state[row, :n],
            model.get_encoder()(src[row : row + 1, :n]).last_hidden_state[0],
            rtol=0,
            atol=1e-10,
        )


def test_embeddings_are_scaled_and_three_way_tied(tiny_model):
    m = tiny_model.model
    assert m.shared.weight is m.encoder.embed_tokens.weight is m.decoder.embed_tokens.weight
    assert tiny_model.lm_head.weight is m.shared.weight
    ids = torch.tensor([[5, 6, 7]])
    embedded = m.encoder.embed(ids, None)
    expected = m.shared.weight[ids] * math.sqrt(16) + pe_fn(3, 16)
    torch.testing.assert_close(embedded, expected)
    unscaled = MinimalTransformerForConditionalGeneration(tiny_config(scale_embedding=False, tie_word_embeddings=False))
    assert unscaled.lm_head.weight is not unscaled.model.shared.weight
    assert unscaled.model.encoder.embed_scale == 1.0


def test_loss_ignores_minus_100_and_shifts_labels(tiny_model):
    src = torch.tensor([[5, 6, 7, 2]])
    labels = torch.tensor([[8, 9, 2, -100]])
    out = tiny_model(input_ids=src, labels=labels)
    decoder_input_ids = torch.tensor([[1, 8, 9, 2]])  # <s> then labels shifted right; -100 becomes pad... unused
    logits = tiny_model(input_ids=src, decoder_input_ids=decoder_input_ids).logits
    expected = torch.nn.functional.cross_entropy(logits[0, :3], labels[0, :3])
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(out.logits[0, :3], logits[0, :3])
    summed = tiny_model(input_ids=src, labels=labels, num_items_in_batch=torch.tensor(6)).loss
    torch.testing.assert_close(summed, expected * 3 / 6)


def test_outputs_attentions_hidden_states_and_tuples(tiny_model):
    src, tgt = torch.tensor([[5, 6, 7, 2]]), torch.tensor([[1, 8, 9]])
    out = tiny_model(input_ids=src, decoder_input_ids=tgt, output_attentions=True, output_hidden_states=True)
    assert len(out.encoder_attentions) == 2 and out.encoder_attentions[0].shape == (1, 4, 4, 4)
    assert out.decoder_attentions[0].shape == (1, 4, 3, 3) and out.cross_attentions[1].shape == (1, 4, 3, 4)
    assert torch.all(out.decoder_attentions[0][0, :, 0, 1:] == 0)  # causal: position 0 sees only itself
    torch.testing.assert_close(out.cross_attentions[0].sum(-1), torch.ones(1, 4, 3))
    assert len(out.encoder_hidden_states) == 3 and len(out.decoder_hidden_states) == 3
    # output_attentions runs the eager path, so compare to sdpa's output within float32 rounding
    plain = tiny_model.model(src, decoder_input_ids=tgt).last_hidden_state
    torch.testing.assert_close(out.decoder_hidden_states[-1], plain, rtol=0, atol=1e-5)
    as_tuple = tiny_model(input_ids=src, decoder_input_ids=tgt, return_dict=False, use_cache=False)
    assert isinstance(as_tuple, tuple)
    torch.testing.assert_close(as_tuple[0], out.logits, rtol=0, atol=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(4)
        model = MinimalTransformerForConditionalGeneration(tiny_config()).train()
        if checkpointing:
            # transformers 5.24 renamed the method (and its kwargs argument); older 5.x releases have the old name
            if hasattr(model, "activation_checkpointing_enable"):
                model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
            else:
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            assert all(layer.gradient_checkpointing for layer in model.model.decoder.layers)
        loss = model(input_ids=torch.tensor([[5, 6, 7, 2]]), labels=torch.tensor([[8, 9, 2]])).loss
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=1e-6)


def test_dropout_is_applied_in_training_only():
    torch.manual_seed(5)
    model = MinimalTransformerForConditionalGeneration(tiny_config(dropout=0.3))
    src, tgt = torch.tensor([[5, 6, 7, 2]]), torch.tensor([[1, 8, 9]])
    model.train()
    assert not torch.equal(model(src, decoder_input_ids=tgt).logits, model(src, decoder_input_ids=tgt).logits)
    model.eval()
    assert torch.equal(model(src, decoder_input_ids=tgt).logits, model(src, decoder_input_ids=tgt).logits)


def test_init_is_documented_scheme(tiny_model):
    cfg = tiny_config(d_model=64, d_ff=256, vocab_size=2000)
    torch.manual_seed(6)
    model = MinimalTransformerForConditionalGeneration(cfg)
    emb = model.model.shared.weight.detach()
    assert torch.all(emb[cfg.pad_token_id] == 0)
    assert abs(emb[1:].std().item() - 64**-0.5) < 0.01  # N(0, d_model^-0.5)
    fc1 = model.model.encoder.layers[0].fc1
    bound = math.sqrt(6 / (64 + 256))  # Glorot uniform
    assert fc1.weight.abs().max() <= bound and fc1.weight.abs().max() > 0.9 * bound
    assert torch.all(fc1.bias == 0)


def test_model_encoder_and_decoder_are_called_with_keywords(tiny_model, monkeypatch):
    """Built-ins pass arguments between their modules by name, so a reordered signature cannot swap two masks."""
    calls = []
    for module in (tiny_model.model, tiny_model.model.encoder, tiny_model.model.decoder):
        name = type(module).__name__

        def keywords_only(*args, _forward=module.forward, _name=name, **kwargs):
            assert not args, f"{_name}.forward got {len(args)} positional argument(s)"
            calls.append(_name)
            return _forward(**kwargs)

        monkeypatch.setattr(module, "forward", keywords_only)
    ids = torch.tensor([[5, 6, 7, 2], [8, 9, 2, 0]])
    tiny_model(input_ids=ids, attention_mask=(ids != 0).long(), labels=ids)
    tiny_model.generate(ids, attention_mask=(ids != 0).long(), max_length=4)
    assert {"MinimalTransformerModel", "MinimalTransformerEncoder", "MinimalTransformerDecoder"} <= set(calls)
