"""generate(): greedy, beam and sampling, with and without the KV cache."""

import pytest
import torch
from conftest import tiny_config
from transformers.cache_utils import EncoderDecoderCache

from hf_minimal import MinimalTransformerForConditionalGeneration


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # A larger init spread makes the argmax decisive, so greedy paths do not hinge on float rounding.
    m = MinimalTransformerForConditionalGeneration(tiny_config(init_std=1.0)).eval()
    return m


SRC = torch.tensor([[5, 6, 7, 8, 9, 2], [10, 11, 12, 2, 0, 0]])
MASK = (SRC != 0).long()


def manual_greedy(model, src, mask, steps):
    """Greedy decoding written out: re-run the whole decoder on the prefix each step, no cache."""
    out = torch.full((src.size(0), 1), model.config.decoder_start_token_id)
    for _ in range(steps):
        logits = model(input_ids=src, attention_mask=mask, decoder_input_ids=out, use_cache=False).logits
        out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    return out


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_greedy_generate_matches_manual_greedy_and_uncached(model, attn):
    model.set_attn_implementation(attn)
    steps = 12
    kwargs = dict(attention_mask=MASK, max_new_tokens=steps, min_new_tokens=steps, do_sample=False)
    cached = model.generate(SRC, **kwargs)
    uncached = model.generate(SRC, use_cache=False, **kwargs)
    assert cached.shape == (2, steps + 1)
    assert torch.equal(cached, uncached)
    manual = manual_greedy(model, SRC, MASK, steps)
    # min_new_tokens suppresses EOS; the manual loop does not, so compare up to each row's first EOS.
    for row in range(2):
        eos = (manual[row] == model.config.eos_token_id).nonzero()
        end = int(eos[0]) if len(eos) else steps + 1
        assert torch.equal(cached[row, :end], manual[row, :end])


def test_cached_scores_equal_uncached_scores(model):
    kwargs = dict(attention_mask=MASK, max_new_tokens=10, do_sample=False, output_scores=True)
    a = model.generate(SRC, return_dict_in_generate=True, **kwargs)
    b = model.generate(SRC, return_dict_in_generate=True, use_cache=False, **kwargs)
    for x, y in zip(a.scores, b.scores, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-5)


def test_beam_search_cached_equals_uncached(model):
    kwargs = dict(attention_mask=MASK, max_new_tokens=10, num_beams=4, num_return_sequences=2, do_sample=False)
    cached = model.generate(SRC, **kwargs)
    assert cached.shape[0] == 4
    assert torch.equal(cached, model.generate(SRC, use_cache=False, **kwargs))


def test_sampling_is_seeded_and_top_k_1_is_greedy(model):
    kwargs = dict(attention_mask=MASK, max_new_tokens=10, do_sample=True)
    torch.manual_seed(3)
    first = model.generate(SRC, **kwargs)
    torch.manual_seed(3)
    assert torch.equal(first, model.generate(SRC, **kwargs))
    assert first.max() < model.config.vocab_size
    greedy = model.generate(SRC, attention_mask=MASK, max_new_tokens=10, do_sample=False)
    assert torch.equal(model.generate(SRC, top_k=1, **kwargs), greedy)


def test_cache_grows_for_self_attention_and_cross_attention_is_computed_once(model):
    out = model(input_ids=SRC, attention_mask=MASK, decoder_input_ids=torch.tensor([[1], [1]]), use_cache=True)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    assert isinstance(cache, EncoderDecoderCache) and cache.get_seq_length() == 1
    cross_keys = cache.cross_attention_cache.layers[0].keys
    assert cross_keys.shape[-2] == SRC.size(1)
    step = model(
        attention_mask=MASK,
        encoder_outputs=(out.encoder_last_hidden_state,),
        decoder_input_ids=torch.tensor([[5], [6]]),
        cache=cache,
    )
    assert cache.get_seq_length() == 2
    assert cache.cross_attention_cache.layers[0].keys is cross_keys  # reused, not recomputed
    full = model(input_ids=SRC, attention_mask=MASK, decoder_input_ids=torch.tensor([[1, 5], [1, 6]]), use_cache=False)
    torch.testing.assert_close(step.logits[:, -1], full.logits[:, -1], rtol=0, atol=1e-5)


def test_past_key_values_alias_is_accepted(model):
    out = model(input_ids=SRC, attention_mask=MASK, decoder_input_ids=torch.tensor([[1], [1]]), use_cache=True)
    cache = out.cache if hasattr(out, "cache") else out.past_key_values
    step = model(
        attention_mask=MASK,
        encoder_outputs=(out.encoder_last_hidden_state,),
        decoder_input_ids=torch.tensor([[5], [6]]),
        past_key_values=cache,
    )
    assert cache.get_seq_length() == 2 and step.logits.shape == (2, 1, model.config.vocab_size)


def test_cached_prefill_of_several_tokens_is_causal(model):
    """A second chunk of several tokens on top of a cache must see the cache and itself causally."""
    tgt = torch.tensor([[1, 5, 6, 7, 8], [1, 9, 10, 11, 12]])
    full = model(input_ids=SRC, attention_mask=MASK, decoder_input_ids=tgt, use_cache=False).logits
    first = model(input_ids=SRC, attention_mask=MASK, decoder_input_ids=tgt[:, :2], use_cache=True)
    cache = first.cache if hasattr(first, "cache") else first.past_key_values
    rest = model(
        attention_mask=MASK,
        encoder_outputs=(first.encoder_last_hidden_state,),
        decoder_input_ids=tgt[:, 2:],
        cache=cache,
    ).logits
    torch.testing.assert_close(torch.cat([first.logits, rest], 1), full, rtol=0, atol=1e-5)
