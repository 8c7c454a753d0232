"""The speed-ups of docs/performance.md change no numbers: each is checked against the plain computation."""

import torch
from conftest import tiny_config

from hf_minimal import MinimalTransformerForConditionalGeneration

SRC = torch.tensor([[5, 6, 7, 8, 9, 2], [10, 11, 12, 2, 0, 0], [13, 14, 2, 0, 0, 0]])
MASK = (SRC != 0).long()
LABELS = torch.tensor([[15, 16, 17, 2], [18, 19, 2, -100], [20, 2, -100, -100]])


def test_one_embedding_lookup_gives_the_gradients_of_two():
    """Training embeds source and target in one lookup; separate lookups (inputs_embeds) must give the same."""
    torch.manual_seed(0)
    model = MinimalTransformerForConditionalGeneration(tiny_config()).double().train()
    decoder_input_ids = model.prepare_decoder_input_ids_from_labels(LABELS)
    shared = model.get_input_embeddings()
    grads = []
    for one_lookup in (True, False):
        model.zero_grad()
        if one_lookup:
            inputs = {"input_ids": SRC, "decoder_input_ids": decoder_input_ids}
        else:
            inputs = {"inputs_embeds": shared(SRC), "decoder_inputs_embeds": shared(decoder_input_ids)}
        loss = model(attention_mask=MASK, labels=LABELS, **inputs).loss
        loss.backward()
        grads.append((loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (loss_one, grads_one), (loss_two, grads_two) = grads
    torch.testing.assert_close(loss_one, loss_two, rtol=0, atol=1e-12)
    assert grads_one.keys() == grads_two.keys()
    for name, grad in grads_one.items():
        torch.testing.assert_close(grad, grads_two[name], rtol=0, atol=1e-12, msg=name)
    assert grads_one["model.shared.weight"][SRC[0, 0]].abs().sum() > 0  # the shared matrix did get a gradient


def test_beam_search_with_the_cross_attention_cache_left_in_place_equals_no_cache():
    """Beam search reorders only the self-attention cache; scores and sequences equal those computed without one."""
    torch.manual_seed(1)
    model = MinimalTransformerForConditionalGeneration(tiny_config(init_std=1.0)).double().eval()
    kwargs = dict(
        attention_mask=MASK, max_new_tokens=8, num_beams=5, num_return_sequences=5, do_sample=False,
        return_dict_in_generate=True, output_scores=True,
    )  # fmt: skip
    cached = model.generate(SRC, **kwargs)
    uncached = model.generate(SRC, use_cache=False, **kwargs)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, rtol=0, atol=1e-12)
    # Beams did move between steps (otherwise reordering would be a no-op and this test would prove nothing).
    assert (cached.beam_indices[:, 1:] != torch.arange(15)[:, None]).any()
