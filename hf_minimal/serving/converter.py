"""The CTranslate2 converter for MinimalTransformer: CTranslate2's `Converter` (validation, quantisation, the binary
format) filled from our modules, one function per stack, layer and sublayer, as CTranslate2's own converters are.

The spec holds the same post-LN or pre-LN layers, activation, √d_model embedding scale and projection (Sections
3.1-3.4), and our interleaved sinusoid as a table on both stacks (Section 3.5), which CTranslate2 would otherwise
replace with its own, different one. This is the export side of serving: it needs torch and the model.
"""

from __future__ import annotations

import math

import torch
from ctranslate2.converters.converter import Converter
from ctranslate2.specs import common_spec, transformer_spec

# Our config's `activation` (transformers' ACT2FN names) -> CTranslate2's enum member names.
ACTIVATIONS = {
    "relu": "RELU",
    "gelu": "GELU",
    "gelu_python": "GELU",
    "gelu_new": "GELUTanh",
    "gelu_fast": "GELUTanh",
    "gelu_pytorch_tanh": "GELUTanh",
    "quick_gelu": "GELUSigmoid",
    "silu": "SWISH",
    "swish": "SWISH",
    "tanh": "Tanh",
    "sigmoid": "Sigmoid",
}


class MinimalTransformerConverter(Converter):
    """Converts a MinimalTransformerForConditionalGeneration and its tokenizer; `convert(output_dir, quantization=)`
    writes the folder. `tokenizer_file` is registered beside the model, for the engine to load with `tokenizers`.
    `max_positions` rows of the position table bound source length and decoding length alike."""

    def __init__(self, model, tokenizer, tokenizer_file: str | None = None, max_positions: int = 1024):
        config = model.config
        if config.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation={config.activation!r} has no CTranslate2 equivalent; it runs {sorted(ACTIVATIONS)}. "
                "Serve this model with PyTorch (g2p.transcribe / generate) instead."
            )
        if max_positions < 2:
            raise ValueError(f"max_positions={max_positions} must be at least 2 (the start token and one more).")
        self.model, self.tokenizer, self.tokenizer_file = model, tokenizer, tokenizer_file
        self.max_positions = max_positions

    def _load(self) -> transformer_spec.TransformerSpec:
        model, config = self.model, self.model.config
        spec = transformer_spec.TransformerSpec.from_config(
            (config.encoder_layers, config.decoder_layers),
            config.num_heads,
            pre_norm=config.norm_first,
            activation=getattr(common_spec.Activation, ACTIVATIONS[config.activation]),
        )
        table = model.model.encoder.embed_positions(0, self.max_positions, torch.float32)  # (P, d_model)
        scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        for stack_spec, stack in ((spec.encoder, model.model.encoder), (spec.decoder, model.model.decoder)):
            set_stack(stack_spec, stack, model.model.shared, table, scale)
        set_linear(spec.decoder.projection, model.lm_head)  # the tied matrix, or the untied head
        set_vocabulary(spec, self.tokenizer, config)
        if self.tokenizer_file is not None:
            spec.register_file(self.tokenizer_file, "tokenizer.json")
        return spec


def set_stack(spec, stack, shared: torch.nn.Embedding, table: torch.Tensor, scale: float) -> None:
    """An encoder or decoder: the shared embeddings, their scale, the position table, the layers, a final norm."""
    embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
    embeddings.weight = array(shared.weight)
    spec.scale_embeddings = scale
    spec.position_encodings.encodings = array(table)
    if stack.layer_norm is not None:  # pre-LN only
        set_norm(spec.layer_norm, stack.layer_norm)
    for layer_spec, layer in zip(spec.layer, stack.layers, strict=True):
        set_layer(layer_spec, layer)


def set_layer(spec, layer) -> None:
    """One layer: self-attention, cross-attention in the decoder, then the feed-forward network (Section 3.1)."""
    attention = layer.self_attn
    set_linear(spec.self_attention.linear[0], attention.q_proj, attention.k_proj, attention.v_proj)
    set_linear(spec.self_attention.linear[1], attention.out_proj)
    set_norm(spec.self_attention.layer_norm, layer.self_attn_layer_norm)
    if hasattr(layer, "encoder_attn"):
        cross = layer.encoder_attn
        set_linear(spec.attention.linear[0], cross.q_proj)
        set_linear(spec.attention.linear[1], cross.k_proj, cross.v_proj)
        set_linear(spec.attention.linear[2], cross.out_proj)
        set_norm(spec.attention.layer_norm, layer.encoder_attn_layer_norm)
    set_linear(spec.ffn.linear_0, layer.fc1)
    set_linear(spec.ffn.linear_1, layer.fc2)
    set_norm(spec.ffn.layer_norm, layer.final_layer_norm)


def set_linear(spec, *modules: torch.nn.Linear) -> None:
    """One CTranslate2 linear from our projections, fused along the output (q|k|v, k|v)."""
    spec.weight = array(torch.cat([m.weight for m in modules]))
    if modules[0].bias is not None:
        spec.bias = array(torch.cat([m.bias for m in modules]))


def set_norm(spec, module: torch.nn.LayerNorm) -> None:
    spec.gamma, spec.beta = array(module.weight), array(module.bias)


def set_vocabulary(spec, tokenizer, config) -> None:
    """Source and target vocabulary (one, as the embeddings are shared), the special tokens and the norm's epsilon."""
    tokens = vocabulary(tokenizer, config.vocab_size)
    spec.register_source_vocabulary(tokens)
    spec.register_target_vocabulary(tokens)
    spec.config.layer_norm_epsilon = config.layer_norm_eps
    for field, token_id in (
        ("unk_token", tokenizer.unk_token_id),
        ("bos_token", config.bos_token_id),
        ("eos_token", config.eos_token_id),
        ("decoder_start_token", config.decoder_start_token_id),
    ):
        if token_id is not None:
            setattr(spec.config, field, tokens[token_id])


def vocabulary(tokenizer, vocab_size: int) -> list[str]:
    """The tokenizer's tokens by id, padded with unused names up to the model's `vocab_size` (embeddings resized
    to a round number keep rows no token reaches)."""
    by_id = {i: token for token, i in tokenizer.get_vocab().items()}
    if sorted(by_id) != list(range(len(by_id))):
        raise ValueError("The tokenizer's ids are not 0..n-1; CTranslate2 needs one token string per embedding row.")
    if len(by_id) > vocab_size:
        raise ValueError(
            f"The tokenizer has {len(by_id)} tokens but the model only {vocab_size} embedding rows; resize the "
            "embeddings (model.resize_token_embeddings(len(tokenizer))) and train them before exporting."
        )
    tokens = [by_id[i] for i in range(len(by_id))]
    return tokens + [f"<unused_{i}>" for i in range(len(tokens), vocab_size)]


def array(tensor: torch.Tensor):
    return tensor.detach().to("cpu", torch.float32).numpy()
