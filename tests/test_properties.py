"""Property tests (hypothesis): attention is a distribution over the keys a query may see, padding never changes
the outputs of the real tokens, and the G2P tokenizer's encode/decode round-trips over its whole vocabulary.

Example counts are modest (the suite runs on 2 CPU cores) and deadlines off (a first call can be slow).
"""

import pytest
import torch
from conftest import tiny_config
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_minimal import MinimalTransformerForConditionalGeneration, scaled_dot_product_attention

V = 23
FEW = settings(max_examples=25, deadline=None, derandomize=True)
MODEL_RUNS = settings(max_examples=12, deadline=None, derandomize=True)


@pytest.fixture(scope="module")
def model() -> MinimalTransformerForConditionalGeneration:
    torch.manual_seed(0)
    return MinimalTransformerForConditionalGeneration(tiny_config()).double().eval()


# ---------------------------------------------------------------- attention rows sum to 1 over unmasked keys


@FEW
@given(
    shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6), st.integers(1, 8)),
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-3, 1.0, 30.0, 1e3]),  # tiny, normal, large and huge scores
    dtype=st.sampled_from([torch.float64, torch.float32, torch.bfloat16]),
)
def test_attention_weights_are_a_distribution_over_the_unmasked_keys(shape, seed, scale, dtype):
    batch, heads, queries, keys, d_k = shape
    g = torch.Generator().manual_seed(seed)
    q, k, v = (
        torch.randn(batch, heads, n, d_k, generator=g, dtype=torch.float64) * scale for n in (queries, keys, keys)
    )
    mask = torch.rand(batch, 1, queries, keys, generator=g) < 0.6  # some rows see nothing at all
    out, weights = scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), mask)
    weights, out = weights.double(), out.double()
    mask = mask.expand_as(weights)
    sees_something = mask.any(-1)
    assert torch.isfinite(out).all() and torch.isfinite(weights).all()
    assert torch.all(weights >= 0) and torch.all(weights[~mask] == 0)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    sums = weights.sum(-1)
    torch.testing.assert_close(sums[sees_something], torch.ones_like(sums[sees_something]), rtol=0, atol=tol)
    assert torch.all(sums[~sees_something] == 0) and torch.all(out[~sees_something] == 0)


@MODEL_RUNS
@given(lengths=st.lists(st.integers(1, 7), min_size=1, max_size=4), tgt_length=st.integers(1, 5))
def test_model_attention_rows_sum_to_1_over_the_unpadded_keys(model, lengths, tgt_length):
    src = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    for row, n in enumerate(lengths):
        src[row, :n] = torch.arange(3, 3 + n) % (V - 3) + 3
    mask = (src != 0).long()
    tgt = torch.full((len(lengths), tgt_length), 5)
    out = model(input_ids=src, attention_mask=mask, decoder_input_ids=tgt, output_attentions=True)
    for encoder_weights, cross_weights, self_weights in zip(
        out.encoder_attentions, out.cross_attentions, out.decoder_attentions, strict=True
    ):
        for weights in (encoder_weights, cross_weights):  # (B, H, queries, source keys)
            torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1], dtype=weights.dtype))
            assert torch.all(weights.masked_select(~mask.bool()[:, None, None, :].expand_as(weights)) == 0)
        causal = torch.ones(tgt_length, tgt_length, dtype=torch.bool).tril()
        torch.testing.assert_close(self_weights.sum(-1), torch.ones(self_weights.shape[:-1], dtype=torch.float64))
        assert torch.all(self_weights[..., ~causal] == 0)  # no query sees a later position


# ---------------------------------------------------------------- padding never changes unpadded outputs


@MODEL_RUNS
@given(
    rows=st.lists(st.tuples(st.integers(1, 8), st.integers(1, 6)), min_size=1, max_size=4),
    extra_padding=st.tuples(st.integers(0, 4), st.integers(0, 4)),
    seed=st.integers(0, 2**31 - 1),
    attn=st.sampled_from(["eager", "sdpa"]),
)
def test_padding_never_changes_the_outputs_of_real_tokens(model, rows, extra_padding, seed, attn):
    model.set_attn_implementation(attn)
    g = torch.Generator().manual_seed(seed)
    src_width = max(n for n, _ in rows) + extra_padding[0]
    tgt_width = max(m for _, m in rows) + extra_padding[1]
    src = torch.zeros(len(rows), src_width, dtype=torch.long)
    tgt = torch.zeros(len(rows), tgt_width, dtype=torch.long)
    pieces = []
    for row, (n, m) in enumerate(rows):
        src[row, :n] = torch.randint(3, V, (n,), generator=g)
        tgt[row, :m] = torch.randint(3, V, (m,), generator=g)
        pieces.append((src[row : row + 1, :n], tgt[row : row + 1, :m]))
    # Padding tokens carry random ids too: a mask, not the pad id, must be what hides them.
    src_mask, tgt_mask = (src != 0).long(), (tgt != 0).long()
    src = torch.where(src_mask.bool(), src, torch.randint(0, V, src.shape, generator=g))
    batched = model(input_ids=src, attention_mask=src_mask, decoder_input_ids=tgt, decoder_attention_mask=tgt_mask)
    for row, (alone_src, alone_tgt) in enumerate(pieces):
        alone = model(input_ids=alone_src, decoder_input_ids=alone_tgt)
        n, m = alone_src.size(1), alone_tgt.size(1)
        torch.testing.assert_close(batched.logits[row, :m], alone.logits[0], rtol=0, atol=1e-10)
        torch.testing.assert_close(
            batched.encoder_last_hidden_state[row, :n], alone.encoder_last_hidden_state[0], rtol=0, atol=1e-10
        )


# ---------------------------------------------------------------- the G2P tokenizer round-trips over its vocabulary


@pytest.fixture(scope="module", params=[False, True], ids=["39 phones", "69 phones with stress"])
def tokenizer(request):
    from hf_minimal import g2p

    return g2p.build_tokenizer(keep_stress=request.param)


def _pieces(tokenizer) -> list[str]:
    return sorted(token for token in tokenizer.get_vocab() if token not in tokenizer.all_special_tokens)


@FEW
@given(data=st.data())
def test_any_sequence_of_vocabulary_tokens_round_trips(tokenizer, data):
    tokens = data.draw(st.lists(st.sampled_from(_pieces(tokenizer)), max_size=30))
    vocab = tokenizer.get_vocab()
    ids = tokenizer(" ".join(tokens))["input_ids"]
    assert ids == [vocab[t] for t in tokens] + [tokenizer.eos_token_id]
    assert tokenizer.decode(ids, skip_special_tokens=True) == " ".join(tokens)
    assert tokenizer.convert_ids_to_tokens(ids) == [*tokens, tokenizer.eos_token]


@FEW
@given(word=st.text(alphabet="abcdefghijklmnopqrstuvwxyz'-.", min_size=1, max_size=40))
def test_spelled_words_round_trip_and_ignore_case(tokenizer, word):
    from hf_minimal import g2p

    ids = tokenizer(word)["input_ids"]
    assert len(ids) == len(word) + 1 and ids[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "") == word
    phones = set(g2p.phone_inventory(keep_stress=False))
    if word.upper().rstrip("012") not in phones:  # a word that is itself a phone symbol reads as that phone
        assert tokenizer(word.upper())["input_ids"] == ids
        assert tokenizer(word.title())["input_ids"] == ids
