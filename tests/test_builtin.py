"""What transformers' common model tests and its generation/export paths demand of a built-in model (Marian, BART):
tied weights that load strictly, 4-D masks, the static cache (eager, sdpa, compiled), export for generation,
`logits_to_keep` and the `past_key_values` deprecation."""

import copy
import warnings

import numpy as np
import pytest
import torch
from conftest import tiny_config
from reference import Reference
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM
from transformers.cache_utils import DynamicCache, EncoderDecoderCache, StaticCache

from hf_minimal import MinimalTransformerForConditionalGeneration, MinimalTransformerModel

SRC = torch.tensor([[5, 6, 7, 8, 9, 2], [10, 11, 12, 2, 0, 0]])
MASK = (SRC != 0).long()
TGT = torch.tensor([[1, 13, 14, 15, 16, 17], [1, 18, 19, 20, 0, 0]])
TGT_MASK = (TGT != 0).long()


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    # A larger init spread makes the argmax decisive, so greedy paths do not hinge on float rounding.
    return MinimalTransformerForConditionalGeneration(tiny_config(init_std=1.0)).eval()


def assert_three_way_tie(m: MinimalTransformerForConditionalGeneration) -> None:
    shared = m.model.shared.weight
    assert m.lm_head.weight is shared
    assert m.model.encoder.embed_tokens.weight is shared and m.model.decoder.embed_tokens.weight is shared


# ------------------------------------------------------------------------------------------------ tied weights


def test_each_stack_owns_its_embedding_module_and_the_tie_is_declared(model):
    assert model.model.encoder.embed_tokens is not model.model.shared  # Marian/BART: modules apart, one tensor
    assert_three_way_tie(model)
    assert set(model._tied_weights_keys.values()) == {"model.shared.weight"}


def _save_without(tmp_path, model, *names) -> str:
    model.save_pretrained(tmp_path)
    tensors = load_file(tmp_path / "model.safetensors")
    assert "model.shared.weight" in tensors and len(tensors) == len(model.state_dict()) - 3  # one tied copy saved
    for name in names:
        tensors.pop(name)
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    return str(tmp_path)


@pytest.mark.parametrize("loader", [MinimalTransformerForConditionalGeneration, AutoModelForSeq2SeqLM])
def test_checkpoint_without_the_shared_embedding_raises(model, tmp_path, loader):
    path = _save_without(tmp_path, model, "model.shared.weight")
    with pytest.raises(ValueError, match=r"lacks 1 tensor\(s\) .* e\.g\. model\.shared\.weight"):
        loader.from_pretrained(path)


def test_missing_shared_embedding_is_reported_and_materialised_with_output_loading_info(model, tmp_path):
    path = _save_without(tmp_path, model, "model.shared.weight")
    loaded, info = MinimalTransformerForConditionalGeneration.from_pretrained(path, output_loading_info=True)
    assert "model.shared.weight" in info["missing_keys"]
    assert_three_way_tie(loaded)
    assert loaded.model.shared.weight.device.type == "cpu" and torch.isfinite(loaded.model.shared.weight).all()
    assert loaded(input_ids=SRC, attention_mask=MASK, decoder_input_ids=TGT).logits.isfinite().all()


@pytest.mark.parametrize("cls", [MinimalTransformerForConditionalGeneration, MinimalTransformerModel])
def test_empty_state_dict_reports_every_tensor_missing_and_leaves_nothing_on_meta(cls):
    config = tiny_config()
    loaded, info = cls.from_pretrained(None, config=config, state_dict={}, output_loading_info=True)
    prefix = "model." if cls is MinimalTransformerForConditionalGeneration else ""
    assert f"{prefix}shared.weight" in info["missing_keys"]
    assert all(p.device.type == "cpu" for p in loaded.parameters())


def test_resize_token_embeddings_keeps_the_tie_and_saves_one_copy(model, tmp_path):
    m = copy.deepcopy(model)
    old = m.model.shared.weight.detach().clone()
    m.resize_token_embeddings(30)
    assert_three_way_tie(m)
    assert m.model.shared.weight.shape == (30, 16) and m.config.vocab_size == 30
    torch.testing.assert_close(m.model.shared.weight[:23], old, rtol=0, atol=0)
    m.save_pretrained(tmp_path)
    saved = load_file(tmp_path / "model.safetensors")
    assert [k for k in saved if any(word in k for word in ("embed", "lm_head", "shared"))] == ["model.shared.weight"]
    reloaded = MinimalTransformerForConditionalGeneration.from_pretrained(tmp_path)
    assert_three_way_tie(reloaded)
    torch.testing.assert_close(reloaded.model.shared.weight, m.model.shared.weight, rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------------- 4-D masks


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("kind", ["bool", "additive"])
def test_4d_masks_pass_through_and_equal_the_2d_masks(model, attn, kind):
    model.set_attn_implementation(attn)
    expected = model(input_ids=SRC, attention_mask=MASK, decoder_input_ids=TGT, decoder_attention_mask=TGT_MASK).logits
    T = TGT.size(1)
    allowed_self = torch.ones(T, T).tril().bool()[None, None] & TGT_MASK.bool()[:, None, None, :]  # (B, 1, T, T)
    allowed_src = MASK.bool()[:, None, None, :].expand(-1, 1, SRC.size(1), -1)  # (B, 1, S, S)
    allowed_cross = MASK.bool()[:, None, None, :].expand(-1, 1, T, -1)  # (B, 1, T, S)

    def as_kind(allowed):
        if kind == "bool":
            return allowed
        return torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)

    encoder_out = model.get_encoder()(input_ids=SRC, attention_mask=as_kind(allowed_src))
    decoder_out = model.get_decoder()(
        input_ids=TGT,
        encoder_hidden_states=encoder_out.last_hidden_state,
        attention_mask=as_kind(allowed_self),
        encoder_attention_mask=as_kind(allowed_cross),
    )
    logits = model.lm_head(decoder_out.last_hidden_state)
    rows = TGT_MASK.bool()
    torch.testing.assert_close(logits[rows], expected[rows], rtol=0, atol=1e-5)


# ------------------------------------------------------------------------------------------------- static cache


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_static_cache_step_by_step_matches_the_float64_reference(attn):
    """Token by token into a StaticCache longer than the target, no mask passed: the empty slots must stay hidden."""
    torch.manual_seed(1)
    cfg = tiny_config()
    model = MinimalTransformerForConditionalGeneration(cfg).double().eval()
    model.set_attn_implementation(attn)
    src, tgt = SRC[:1], TGT[:1]
    cache = EncoderDecoderCache(StaticCache(config=cfg, max_cache_len=12), DynamicCache())
    encoder_outputs = model.get_encoder()(input_ids=src)
    steps = []
    for t in range(tgt.size(1)):
        out = model(encoder_outputs=encoder_outputs, decoder_input_ids=tgt[:, t : t + 1], cache=cache, use_cache=True)
        steps.append(out.logits[0, 0])
    expected = Reference(model.state_dict(), cfg).logits(src[0].tolist(), tgt[0].tolist())
    np.testing.assert_allclose(torch.stack(steps).detach().numpy(), expected, rtol=0, atol=1e-10)


def test_compiled_static_cache_decoding_matches_the_float64_reference():
    """The compiled path is exact too: inductor, fullgraph, float64, token by token into a static cache."""
    torch.manual_seed(1)
    cfg = tiny_config(decoder_layers=1)
    model = MinimalTransformerForConditionalGeneration(cfg).double().eval()
    src, tgt = SRC[:1], TGT[:1]
    encoder_outputs = model.get_encoder()(input_ids=src)
    step = torch.compile(model, fullgraph=True)
    cache = EncoderDecoderCache(StaticCache(config=cfg, max_cache_len=8), DynamicCache())
    try:
        with torch.no_grad():
            logits = [
                step(encoder_outputs=encoder_outputs, decoder_input_ids=tgt[:, t : t + 1], cache=cache).logits[0, 0]
                for t in range(tgt.size(1))
            ]
    finally:
        torch._dynamo.reset()
    expected = Reference(model.state_dict(), cfg).logits(src[0].tolist(), tgt[0].tolist())
    np.testing.assert_allclose(torch.stack(logits).numpy(), expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_with_a_static_cache_gives_the_dynamic_cache_tokens(model, attn, num_beams):
    model.set_attn_implementation(attn)
    kwargs = dict(attention_mask=MASK, max_new_tokens=10, min_new_tokens=10, do_sample=False, num_beams=num_beams)
    dynamic = model.generate(SRC, **kwargs)
    static = model.generate(SRC, cache_implementation="static", **kwargs)
    assert torch.equal(static, dynamic)


@pytest.mark.parametrize(("attn", "backend"), [("sdpa", "inductor"), ("eager", "aot_eager")])
def test_compiled_static_cache_generation_is_one_graph_and_gives_the_dynamic_tokens(attn, backend):
    """`fullgraph=True` fails on any graph break; inductor is the real compiler, aot_eager a faster check of eager."""
    torch.manual_seed(0)
    model = MinimalTransformerForConditionalGeneration(tiny_config(init_std=1.0, decoder_layers=1)).eval()
    model.set_attn_implementation(attn)
    assert model._can_compile_fullgraph
    kwargs = dict(attention_mask=MASK, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    expected = [model.generate(SRC, num_beams=beams, **kwargs) for beams in (1, 3)]
    torch._dynamo.reset()
    eager_forward = model.forward
    model.forward = torch.compile(eager_forward, fullgraph=True, backend=backend)
    try:
        got = [model.generate(SRC, num_beams=beams, cache_implementation="static", **kwargs) for beams in (1, 3)]
    finally:
        model.forward = eager_forward
        torch._dynamo.reset()
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])


# --------------------------------------------------------------------------------------------------------- export


def test_get_encoder_and_get_decoder_follow_pretrained_model(model):
    assert model.get_encoder() is model.model.encoder and model.get_decoder() is model.model.decoder
    assert model.model.get_encoder() is model.model.encoder
    for modality in ("image", "audio"):  # no such encoder: transformers' "not found" answer is the model itself
        assert model.get_encoder(modality=modality) is model
    with pytest.raises(ValueError, match="modality"):
        model.get_encoder(modality="smell")


def test_decoder_returns_a_model_output_and_takes_use_cache_and_extra_kwargs(model):
    encoder_states = model.get_encoder()(input_ids=SRC, attention_mask=MASK).last_hidden_state
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    out = model.get_decoder()(
        input_ids=TGT[:, :1], encoder_hidden_states=encoder_states, cache=cache, use_cache=True, unused_flag=True
    )
    assert out[0] is out.last_hidden_state and out[0].shape == (2, 1, 16)
    assert cache.get_seq_length() == 1
    no_cache = model.get_decoder()(
        input_ids=TGT[:, :1], encoder_hidden_states=encoder_states, cache=cache, use_cache=False
    )
    assert cache.get_seq_length() == 1  # use_cache=False leaves the cache alone
    torch.testing.assert_close(no_cache[0], out[0], rtol=0, atol=1e-6)


def test_executorch_seq2seq_exportable_module_generates_the_models_tokens(model):
    from transformers.integrations.executorch import Seq2SeqLMExportableModule

    model.set_attn_implementation("sdpa")
    source = SRC[:1]
    exportable = Seq2SeqLMExportableModule(model, batch_size=1, max_hidden_seq_length=16, max_cache_length=16)
    exportable.export(source)
    got = exportable.generate(source, max_new_tokens=8)
    # The exportable module starts every sequence at token 0; greedy from the same start must agree.
    expected = model.generate(source, max_new_tokens=8, min_new_tokens=8, do_sample=False, decoder_start_token_id=0)
    assert got == expected[0, : len(got)].tolist() and len(got) >= 2


@pytest.mark.parametrize("cache_implementation", [None, "static"])
def test_export_for_generation_components_match_the_model(model, cache_implementation):
    from transformers import GenerationConfig
    from transformers.exporters import DynamoConfig, DynamoExporter
    from transformers.exporters.utils import decompose_for_generation

    model.set_attn_implementation("sdpa")
    generation_config = GenerationConfig(**{**model.generation_config.to_diff_dict(), "max_length": 12})
    generation_config.cache_implementation = cache_implementation
    sample = {"input_ids": SRC, "attention_mask": MASK}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.export's notes on side effects and version drift
        exported = DynamoExporter().export_for_generation(
            model, sample, DynamoConfig(), generation_config=generation_config
        )
        components = decompose_for_generation(model, sample, generation_config=generation_config)
    assert set(exported.components) == set(components) == {"prefill", "decode"}
    for name, (submodel, inputs) in components.items():
        runner = exported.runners[name]
        expected = submodel(**copy.deepcopy(inputs)).logits
        got = runner(**{k: v for k, v in copy.deepcopy(inputs).items() if k in runner.metadata.kwargs}).logits
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6, msg=name)


# -------------------------------------------------------------------------------- logits_to_keep and deprecation


def test_logits_to_keep_projects_only_the_kept_positions(model):
    full = model(input_ids=SRC, attention_mask=MASK, decoder_input_ids=TGT).logits
    last = model(input_ids=SRC, attention_mask=MASK, decoder_input_ids=TGT, logits_to_keep=1).logits
    assert last.shape == (2, 1, 23)
    torch.testing.assert_close(last, full[:, -1:], rtol=0, atol=1e-6)
    picked = model(input_ids=SRC, attention_mask=MASK, decoder_input_ids=TGT, logits_to_keep=torch.tensor([0, 3]))
    torch.testing.assert_close(picked.logits, full[:, [0, 3]], rtol=0, atol=1e-6)
    assert model._supports_logits_to_keep()  # so generate passes logits_to_keep=1 at every step
    with pytest.raises(ValueError, match="logits_to_keep cannot be combined with labels"):
        model(input_ids=SRC, labels=TGT, logits_to_keep=1)


def test_past_key_values_still_works_but_warns_like_the_built_ins(model):
    kwargs = dict(input_ids=SRC, attention_mask=MASK, decoder_input_ids=TGT[:, :3], use_cache=True)
    new = model(cache=EncoderDecoderCache(DynamicCache(), DynamicCache()), **kwargs)
    with pytest.warns(FutureWarning, match=r"`past_key_values` is deprecated .* Use `cache` instead"):
        old = model(past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()), **kwargs)
    torch.testing.assert_close(old.logits, new.logits, rtol=0, atol=0)
    assert old.cache.get_seq_length() == 3
    with pytest.warns(FutureWarning, match="MinimalTransformerModel.forward"):
        model.model(past_key_values=EncoderDecoderCache(DynamicCache(), DynamicCache()), **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # generate itself uses the new name: no warning
        model.generate(SRC, attention_mask=MASK, max_new_tokens=3)
