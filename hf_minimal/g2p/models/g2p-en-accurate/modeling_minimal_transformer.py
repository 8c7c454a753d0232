"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017), in the paper's order.

attention (3.2.1) -> multi-head attention (3.2.2) -> feed-forward + residual sublayers (3.3, 3.1) ->
positional encoding (3.5) -> encoder layer -> decoder layer -> encoder -> decoder (3.1) -> pretrained base ->
model -> LM head with the three-way weight tie (3.4).

This file and `configuration_minimal_transformer.py` are copied to the Hub as remote code, so they import only
torch, transformers and each other.
"""

import dataclasses
import math
import os
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from .configuration_minimal_transformer import MinimalTransformerConfig

# transformers 5.x renamed the cache field of the outputs from `past_key_values` to `cache`; support both.
_CACHE_FIELD = "cache" if "cache" in {f.name for f in dataclasses.fields(Seq2SeqLMOutput)} else "past_key_values"


def cache_argument(cache: Cache | None, past_key_values: Cache | None, where: str) -> Cache | None:
    """`cache`, or the old name `past_key_values`, which still works but warns, as transformers' built-ins do
    (only where transformers itself has moved to `cache`: older versions' generate passes the old name)."""
    if past_key_values is not None and _CACHE_FIELD == "cache" and not torch.compiler.is_compiling():
        message = f"`past_key_values` is deprecated for `{where}`. Use `cache` instead."
        warnings.warn(message, FutureWarning, stacklevel=3)
    return cache if cache is not None else past_key_values


def scaled_dot_product_attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(QKᵀ / √d_k) V (Section 3.2.1, Equation 1).

    Shapes (..., L, d_k), (..., S, d_k), (..., S, d_v); `mask` broadcasts to (..., L, S) and is boolean, True
    where a query may attend, or additive float (0 or the dtype's minimum, as transformers' mask functions build
    for generation with a static cache). Returns the output (..., L, d_v) and the weights (..., L, S).
    """
    scores = query @ key.transpose(-2, -1) / math.sqrt(query.size(-1))  # (..., L, S)
    boolean = mask is not None and mask.dtype == torch.bool
    if boolean:
        # The dtype's minimum rather than -inf: a fully masked row stays finite, and is zeroed below.
        scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
    elif mask is not None:
        scores = scores + mask
    weights = scores.softmax(dim=-1)  # subtracts the row max, so large scores cannot overflow
    if boolean:
        weights = weights.masked_fill(~mask, 0.0)  # a fully masked row gives zeros, as torch's SDPA does
    if dropout_p > 0.0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ value, weights


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The `attn_implementation="eager"` entry of transformers' attention registry: our readable function.

    Takes (B, H, T, d_k) tensors and returns (B, T, H, d_k), as every registry function does.
    """
    if attention_mask is None and module.is_causal and query.size(-2) > 1:
        attention_mask = causal_mask(query.size(-2), key.size(-2), query.device)
    output, weights = scaled_dot_product_attention(query, key, value, attention_mask, dropout)
    return output.transpose(1, 2), weights


def causal_mask(
    query_length: int, key_length: int, device: torch.device | None = None, start: int | torch.Tensor | None = None
) -> torch.Tensor:
    """(1, 1, L, S) boolean mask: query i, at position start + i, sees keys 0..start+i (Section 3.2.3).

    `start` defaults to S - L: the queries are the last L of S positions. A static cache has more key slots than
    positions written, and its unwritten tail is hidden the same way.
    """
    start = key_length - query_length if start is None else start
    positions = start + torch.arange(query_length, device=device)  # (L,)
    return (torch.arange(key_length, device=device) <= positions[:, None])[None, None]


class MinimalTransformerAttention(nn.Module):
    """Multi-head attention: h heads of d_k = d_model / h, concatenated and projected by W^O (Section 3.2.2)."""

    def __init__(self, config: MinimalTransformerConfig, is_causal: bool = False, layer_idx: int | None = None):
        super().__init__()
        self.config = config
        self.num_heads = config.num_heads
        self.head_dim = config.d_model // config.num_heads
        self.dropout = config.attention_dropout
        self.is_causal = is_causal  # read by transformers' sdpa function
        self.layer_idx = layer_idx  # which cache slot this layer writes
        self.q_proj = nn.Linear(config.d_model, config.d_model)
        self.k_proj = nn.Linear(config.d_model, config.d_model)
        self.v_proj = nn.Linear(config.d_model, config.d_model)
        self.out_proj = nn.Linear(config.d_model, config.d_model)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        B, T, _ = hidden_states.shape
        q = self.q_proj(hidden_states).view(B, T, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, T, d_k)
        is_cross = key_value_states is not None
        if is_cross and cache is not None and cache.is_updated.get(self.layer_idx):
            # Cross-attention keys/values depend only on the encoder output: computed once per generation.
            layer = cache.cross_attention_cache.layers[self.layer_idx]
            k, v = layer.keys, layer.values
        else:
            source = key_value_states if is_cross else hidden_states
            S = source.size(1)  # explicit, not -1: view cannot infer -1 for an empty batch or sequence
            k = self.k_proj(source).view(B, S, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, S, d_k)
            v = self.v_proj(source).view(B, S, self.num_heads, self.head_dim).transpose(1, 2)  # (B, H, S, d_k)
            if cache is not None:
                sub_cache = cache.cross_attention_cache if is_cross else cache.self_attention_cache
                k, v = sub_cache.update(k, v, self.layer_idx)
                if is_cross:
                    cache.is_updated[self.layer_idx] = True
        # transformers' sdpa wrapper cannot reshape 0 elements: an empty batch or sequence takes the eager path.
        implementation = "eager" if output_attentions or q.numel() == 0 else self.config._attn_implementation
        attention = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        dropout = self.dropout if self.training else 0.0
        output, weights = attention(self, q, k, v, attention_mask, dropout=dropout, scaling=self.head_dim**-0.5)
        output = output.reshape(B, T, self.num_heads * self.head_dim)  # (B, T, H * d_k): the heads concatenated
        return self.out_proj(output), weights


class MinimalTransformerLayer(GradientCheckpointingLayer):
    """What encoder and decoder layers share: the position-wise FFN (Section 3.3) and residual sublayers (3.1, 5.4)."""

    def __init__(self, config: MinimalTransformerConfig):
        super().__init__()
        self.norm_first = config.norm_first
        self.dropout = config.dropout
        self.fc1 = nn.Linear(config.d_model, config.d_ff)
        self.fc2 = nn.Linear(config.d_ff, config.d_model)
        self.activation_fn = ACT2FN[config.activation]
        self.final_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def feed_forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        """FFN(x) = max(0, xW₁ + b₁)W₂ + b₂ (Equation 2)."""
        return self.fc2(self.activation_fn(self.fc1(x))), None

    def sublayer(self, x: torch.Tensor, norm: nn.LayerNorm, fn) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Post-LN LayerNorm(x + Dropout(fn(x))) as in the paper; pre-LN x + Dropout(fn(LayerNorm(x)))."""
        out, weights = fn(norm(x) if self.norm_first else x)
        x = x + F.dropout(out, p=self.dropout, training=self.training)
        return (x if self.norm_first else norm(x)), weights


class MinimalTransformerPositionalEncoding(nn.Module):
    """The fixed sinusoidal positional encoding (Section 3.5), a non-persistent buffer that is never saved."""

    def __init__(self, config: MinimalTransformerConfig):
        super().__init__()
        self.d_model = config.d_model
        # float64, cast on use: float32 sines of large angles are off by ~1e-7, which float64 runs would see.
        pe = sinusoidal_position_encoding(config.max_position_embeddings, config.d_model, torch.float64)
        self.register_buffer("pe", pe, persistent=False)

    def forward(self, start: int | torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
        """Rows start..start+length-1 as (length, d_model); rows past the buffer are computed, never wrapped."""
        if isinstance(start, torch.Tensor):
            # A static cache counts on the device: gather the rows, so a compiled step has no data-dependent shape.
            positions = start + torch.arange(length, device=self.pe.device)
            if not torch.compiler.is_compiling() and length and int(positions[-1]) >= self.pe.size(0):
                return self(int(start), length, dtype)
            return self.pe.index_select(0, positions).to(dtype)
        end = start + length
        if end > self.pe.size(0) or (dtype == torch.float64 and self.pe.dtype != torch.float64):
            return sinusoidal_position_encoding(end, self.d_model, dtype, self.pe.device)[start:]
        return self.pe[start:end].to(dtype)


def sinusoidal_position_encoding(
    num_positions: int, d_model: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(...), interleaved (Section 3.5)."""
    if d_model % 2 != 0:
        raise ValueError(f"sinusoidal_position_encoding: d_model={d_model} must be even (sin/cos pairs).")
    position = torch.arange(num_positions, dtype=torch.float64, device=device)[:, None]  # (P, 1)
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64, device=device)  # (d_model / 2,)
    angles = position / 10000.0 ** (two_i / d_model)  # (P, d_model / 2)
    return torch.stack([angles.sin(), angles.cos()], dim=-1).flatten(1).to(dtype)  # (P, d_model)


class MinimalTransformerEncoderLayer(MinimalTransformerLayer):
    """Encoder layer: self-attention, then the FFN, each a residual sublayer (Section 3.1)."""

    def __init__(self, config: MinimalTransformerConfig):
        super().__init__(config)
        self.self_attn = MinimalTransformerAttention(config)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        def attend(x):
            return self.self_attn(x, attention_mask=attention_mask, output_attentions=output_attentions)

        hidden_states, weights = self.sublayer(hidden_states, self.self_attn_layer_norm, attend)
        hidden_states, _ = self.sublayer(hidden_states, self.final_layer_norm, self.feed_forward)
        return hidden_states, weights


class MinimalTransformerDecoderLayer(MinimalTransformerLayer):
    """Decoder layer: masked self-attention, attention over the encoder output, then the FFN (Section 3.1)."""

    def __init__(self, config: MinimalTransformerConfig, layer_idx: int):
        super().__init__(config)
        self.self_attn = MinimalTransformerAttention(config, is_causal=True, layer_idx=layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.encoder_attn = MinimalTransformerAttention(config, layer_idx=layer_idx)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        def attend_self(x):
            return self.self_attn(x, attention_mask=attention_mask, cache=cache, output_attentions=output_attentions)

        def attend_encoder(x):
            return self.encoder_attn(
                x, encoder_hidden_states, encoder_attention_mask, cache=cache, output_attentions=output_attentions
            )

        hidden_states, self_weights = self.sublayer(hidden_states, self.self_attn_layer_norm, attend_self)
        hidden_states, cross_weights = self.sublayer(hidden_states, self.encoder_attn_layer_norm, attend_encoder)
        hidden_states, _ = self.sublayer(hidden_states, self.final_layer_norm, self.feed_forward)
        return hidden_states, self_weights, cross_weights


class MinimalTransformerStack(nn.Module):
    """What both stacks share: embeddings × √d_model + positional encoding, then dropout (3.4, 3.5, 5.4)."""

    def __init__(self, config: MinimalTransformerConfig):
        super().__init__()
        self.config = config
        # Tied to the model's `shared` matrix by _tied_weights_keys (Section 3.4), so loading sees one tensor.
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
        self.embed_positions = MinimalTransformerPositionalEncoding(config)
        self.dropout = config.dropout
        # Pre-LN leaves the residual stream un-normalised, so it needs a final LayerNorm per stack.
        self.layer_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps) if config.norm_first else None

    def embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, start: int = 0) -> torch.Tensor:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            check_token_ids(input_ids, self.embed_tokens.num_embeddings, self.input_name)
            inputs_embeds = self.embed_tokens(input_ids)
        x = inputs_embeds * self.embed_scale  # (B, T, d_model)
        x = x + self.embed_positions(start, x.size(1), x.dtype)
        return F.dropout(x, p=self.dropout, training=self.training)

    def finish(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(hidden_states) if self.layer_norm is not None else hidden_states


def check_token_ids(input_ids: torch.Tensor, vocab_size: int, name: str = "input_ids") -> None:
    """Raise a clear ValueError for ids outside [0, vocab_size) instead of an opaque index error inside torch."""
    if input_ids.is_floating_point() or input_ids.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer token ids (torch.long), not {input_ids.dtype}.")
    if input_ids.numel() == 0 or torch.compiler.is_compiling():
        return
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or high >= vocab_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name}: token id {bad} is outside the vocabulary [0, {vocab_size}). Encode the text with the model's "
            f"own tokenizer, or resize the embeddings (model.resize_token_embeddings) if the tokenizer has more tokens."
        )


def padding_mask(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, S) 1/0 mask -> (B, 1, 1, S) boolean, True where a key may be attended (broadcast over heads and queries).

    A 4-D mask (B, 1, L, S), boolean or additive float, is already in the attention functions' form: passed through.
    """
    if attention_mask is None or attention_mask.dim() == 4:
        return attention_mask
    return attention_mask.bool()[:, None, None, :]


class MinimalTransformerEncoder(MinimalTransformerStack):
    """The encoder: a stack of N identical layers over the embedded source (Section 3.1)."""

    input_name = "input_ids"  # named in token-id errors

    def __init__(self, config: MinimalTransformerConfig):
        super().__init__(config)
        self.layers = nn.ModuleList([MinimalTransformerEncoderLayer(config) for _ in range(config.encoder_layers)])

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        hidden_states = self.embed(input_ids, inputs_embeds)
        mask = padding_mask(attention_mask)
        all_hidden, all_attentions = [], []
        for layer in self.layers:
            all_hidden.append(hidden_states)
            hidden_states, weights = layer(hidden_states, mask, output_attentions=bool(output_attentions))
            all_attentions.append(weights)
        hidden_states = self.finish(hidden_states)
        output = BaseModelOutput(
            last_hidden_state=hidden_states,
            hidden_states=(*all_hidden, hidden_states) if output_hidden_states else None,
            attentions=tuple(all_attentions) if output_attentions else None,
        )
        return output if return_dict is not False else output.to_tuple()


class MinimalTransformerDecoder(MinimalTransformerStack):
    """The decoder: N layers with masked self-attention and attention over the encoder output (Section 3.1)."""

    input_name = "decoder_input_ids"  # named in token-id errors

    def __init__(self, config: MinimalTransformerConfig):
        super().__init__(config)
        self.layers = nn.ModuleList(
            [MinimalTransformerDecoderLayer(config, layer_idx=i) for i in range(config.decoder_layers)]
        )

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        cache = None if use_cache is False else cache
        past_length = cache.get_seq_length() if cache is not None else 0  # a tensor for a static cache
        hidden_states = self.embed(input_ids, inputs_embeds, start=past_length)
        T = hidden_states.size(1)
        self_mask = decoder_self_attention_mask(attention_mask, T, past_length, cache, hidden_states.device)
        cross_mask = padding_mask(encoder_attention_mask)
        all_hidden, all_self, all_cross = [], [], []
        for layer in self.layers:
            all_hidden.append(hidden_states)
            hidden_states, self_weights, cross_weights = layer(
                hidden_states,
                encoder_hidden_states,
                attention_mask=self_mask,
                encoder_attention_mask=cross_mask,
                cache=cache,
                output_attentions=bool(output_attentions),
            )
            all_self.append(self_weights)
            all_cross.append(cross_weights)
        hidden_states = self.finish(hidden_states)
        output = BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states,
            hidden_states=(*all_hidden, hidden_states) if output_hidden_states else None,
            attentions=tuple(all_self) if output_attentions else None,
            cross_attentions=tuple(all_cross) if output_attentions else None,
            **{_CACHE_FIELD: cache},
        )
        return output if return_dict is not False else output.to_tuple()


def decoder_self_attention_mask(
    attention_mask: torch.Tensor | None,
    length: int,
    past_length: int | torch.Tensor,
    cache: Cache | None,
    device: torch.device,
) -> torch.Tensor | None:
    """The decoder's causal mask (Section 3.2.3) for `length` new queries after `past_length` cached positions,
    combined with the decoder padding mask; None where the attention functions' `is_causal` suffices.

    A dynamic cache holds past_length + length keys. A static cache (generate(cache_implementation="static"),
    export) holds a fixed number of slots, the unwritten ones hidden by the causal mask. A 4-D mask, which generate
    builds for a static cache (boolean, or additive float for eager), is already complete and passes through.
    """
    if attention_mask is not None and attention_mask.dim() == 4:
        return attention_mask
    static = cache is not None and getattr(cache, "is_compileable", False)
    key_length = cache.get_mask_sizes(length, 0)[0] if static else past_length + length
    if attention_mask is None and not static and (length == 1 or past_length == 0):
        return None  # one query may see all cached keys; otherwise `is_causal` applies the causal mask
    if attention_mask is not None and attention_mask.size(-1) != key_length:
        if not static:
            raise ValueError(
                f"decoder_attention_mask covers {attention_mask.size(-1)} positions, but the decoder sees {key_length} "
                f"({past_length} cached + {length} new); pass a mask for every position, cached ones included."
            )
        attention_mask = F.pad(attention_mask, (0, key_length - attention_mask.size(-1)))  # the unwritten slots
    mask = causal_mask(length, key_length, device, start=past_length)  # (1, 1, T, S)
    return mask if attention_mask is None else mask & padding_mask(attention_mask)


class MinimalTransformerPreTrainedModel(PreTrainedModel):
    """Weight init and loading for both model classes (the paper gives no init; we document ours)."""

    config_class = MinimalTransformerConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _can_compile_fullgraph = True  # static-cache generation compiles as one graph (tests/test_builtin.py)
    _no_split_modules = ["MinimalTransformerEncoderLayer", "MinimalTransformerDecoderLayer"]

    def save_pretrained(self, save_directory, *args, **kwargs):
        """As transformers', plus `auto_map` entries for both model classes (transformers writes only the saved
        one), so `AutoModel` and `AutoModelForSeq2SeqLM` both load the folder with `trust_remote_code=True`."""
        if self._auto_class is not None:
            module = type(self).__module__.rsplit(".", 1)[-1]
            self.config.auto_map = {
                **(getattr(self.config, "auto_map", None) or {}),
                "AutoModel": f"{module}.MinimalTransformerModel",
                "AutoModelForSeq2SeqLM": f"{module}.MinimalTransformerForConditionalGeneration",
            }
        return super().save_pretrained(save_directory, *args, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As transformers', but strict, so that a damaged checkpoint is never half-loaded silently: a corrupt
        weights file, or weights that do not fit config.json (missing, unused or of another shape), raise an error
        naming the file. `output_loading_info=True` keeps transformers' lenient loading and returns its report;
        `ignore_mismatched_sizes=True` re-initialises tensors of another shape on purpose. Only safetensors are
        read unless `use_safetensors=False` is passed, so a planted pytorch_model.bin is never unpickled."""
        kwargs.setdefault("use_safetensors", True)
        if kwargs.get("output_loading_info"):
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        allow_mismatch = kwargs.pop("ignore_mismatched_sizes", False)
        where = str(pretrained_model_name_or_path)
        files = sorted(f for f in os.listdir(where) if f.endswith(".safetensors")) if os.path.isdir(where) else []
        weights = os.path.join(where, files[0] if len(files) == 1 else "model.safetensors")
        try:
            model, info = super().from_pretrained(
                pretrained_model_name_or_path, *args, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
            )
        except Exception as error:
            if type(error).__name__ != "SafetensorError":  # safetensors' class, named so this file imports only torch
                raise
            raise OSError(
                f"{weights} is damaged or truncated ({error}). Download or save the model again "
                f"(a Trainer output folder keeps earlier copies in its checkpoint-N folders)."
            ) from error
        config_file = os.path.join(where, "config.json")
        if info["mismatched_keys"] and not allow_mismatch:
            name, saved, built = sorted(info["mismatched_keys"])[0]
            raise ValueError(
                f"{weights} does not fit {config_file}: {name} is {tuple(saved)} in the weights but {tuple(built)} in "
                f"the model the config describes ({len(info['mismatched_keys'])} tensor(s) differ: d_model, d_ff or "
                f"vocab_size changed?). Restore the config.json saved with these weights, or pass "
                f"ignore_mismatched_sizes=True to re-initialise those tensors on purpose."
            )
        unexpected = sorted(k for k in info["unexpected_keys"] if not k.startswith("lm_head."))  # base from LM: fine
        # A tied name (encoder.embed_tokens is shared) is reported missing when its source was re-initialised.
        params = dict(model.named_parameters(remove_duplicate=False))
        loaded = {id(p) for k, p in params.items() if k not in info["missing_keys"]}
        # One name per unloaded tensor: the tie's source (model.shared.weight) rather than its copies.
        tied_copies, by_tensor = set(cls._tied_weights_keys or {}), {}
        for key in sorted(info["missing_keys"], key=lambda k: (k in tied_copies, k)):
            if id(params.get(key)) not in loaded:
                by_tensor.setdefault(id(params.get(key)), key)
        missing = sorted(by_tensor.values())
        for keys, problem in ((missing, "lacks {}"), (unexpected, "has {} extra")):
            if keys:
                raise ValueError(
                    f"{weights} {problem.format(len(keys))} tensor(s) for the model {config_file} describes, e.g. "
                    f"{keys[0]} (encoder_layers, decoder_layers, norm_first or tie_word_embeddings changed, or the "
                    f"file is incomplete). Restore the config.json saved with these weights, or load with "
                    f"output_loading_info=True to accept {'random values' if 'lacks' in problem else 'dropping them'}."
                )
        return model

    def _init_weights(self, module: nn.Module) -> None:
        """Glorot-uniform linear weights and zero biases (as in fairseq and tensor2tensor); embeddings
        N(0, init_std) with init_std = d_model^-0.5 by default, so that embeddings × √d_model start with
        unit variance like the positional encodings; LayerNorm at identity; the sinusoid table refilled."""
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=self.config.init_std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, MinimalTransformerPositionalEncoding):
            # from_pretrained rebuilds non-persistent buffers as empty tensors: refill the table.
            table = sinusoidal_position_encoding(module.pe.size(0), module.d_model, torch.float64, module.pe.device)
            init.copy_(module.pe, table.to(module.pe.dtype))


class MinimalTransformerModel(MinimalTransformerPreTrainedModel):
    """The bare encoder-decoder (Figure 1), returning the decoder's last hidden states."""

    _tied_weights_keys = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }

    def __init__(self, config: MinimalTransformerConfig):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.encoder = MinimalTransformerEncoder(config)
        self.decoder = MinimalTransformerDecoder(config)
        if not config.tie_word_embeddings:
            # transformers ties declared weights only under tie_word_embeddings; an untied lm_head still leaves one
            # source/target matrix (Section 3.4), so the stacks hold `shared` itself (nothing is declared tied then).
            self.encoder.embed_tokens = self.decoder.embed_tokens = self.shared
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = value

    def get_encoder(self, modality: str | None = None) -> nn.Module:
        """The text encoder; for another modality ("image", "audio"), transformers' lookup, which finds none."""
        return self.encoder if modality is None else super().get_encoder(modality=modality)

    def get_decoder(self) -> MinimalTransformerDecoder:
        return self.decoder

    def embed_source_and_target(
        self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both sides' token embeddings from one lookup in the shared matrix (Section 3.4), unscaled.

        The same values as one lookup per stack, but backward then builds one dense (vocab_size, d_model) gradient
        for the matrix instead of two: for the base model's 37000 x 512 matrix that saves 2-5% of a CPU training step.
        """
        check_token_ids(input_ids, self.shared.num_embeddings, self.encoder.input_name)
        check_token_ids(decoder_input_ids, self.shared.num_embeddings, self.decoder.input_name)
        both = self.shared(torch.cat([input_ids.flatten(), decoder_input_ids.flatten()]))  # (B*S + B*T, d_model)
        source, target = both.split([input_ids.numel(), decoder_input_ids.numel()])
        return source.view(*input_ids.shape, both.size(-1)), target.view(*decoder_input_ids.shape, both.size(-1))

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> Seq2SeqModelOutput | tuple:
        """Encode the source (unless `encoder_outputs` are given), then decode; `cache` holds decoder keys/values."""
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        output_hidden_states = (
            output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        )
        use_cache = use_cache if use_cache is not None else (self.config.use_cache and not self.training)
        cache = cache_argument(cache, past_key_values, "MinimalTransformerModel.forward")
        ids = input_ids is not None and decoder_input_ids is not None
        embeds = inputs_embeds is not None or decoder_inputs_embeds is not None
        if encoder_outputs is None and ids and not embeds and torch.is_grad_enabled():  # see embed_source_and_target
            inputs_embeds, decoder_inputs_embeds = self.embed_source_and_target(input_ids, decoder_input_ids)
            input_ids = decoder_input_ids = None
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
            )
        elif not isinstance(
            encoder_outputs, BaseModelOutput
        ):  # a tuple: (last_hidden_state, hidden_states, attentions)
            encoder_outputs = BaseModelOutput(*encoder_outputs[:3])
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError(
                "MinimalTransformerModel needs decoder_input_ids (or decoder_inputs_embeds); to train with labels, "
                "use MinimalTransformerForConditionalGeneration, which shifts them right for you."
            )
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        if not use_cache:
            cache = None
        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            attention_mask=decoder_attention_mask,
            encoder_attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
        )
        output = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
            **{_CACHE_FIELD: cache},
        )
        return output if return_dict is not False else output.to_tuple()


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher forcing: the decoder sees <start> y_1 .. y_{n-1} and predicts y_1 .. y_n (Section 3.1)."""
    shifted = labels.new_full(labels.shape, pad_token_id)
    shifted[:, 1:] = labels[:, :-1]
    shifted[:, :1] = decoder_start_token_id  # a slice, so that length-0 labels give a length-0 decoder input
    return shifted.masked_fill(shifted == -100, pad_token_id)


class MinimalTransformerForConditionalGeneration(MinimalTransformerPreTrainedModel, GenerationMixin):
    """The full model: encoder-decoder plus the pre-softmax projection tied to the embeddings (Section 3.4)."""

    _tied_weights_keys = {
        "lm_head.weight": "model.shared.weight",
        "model.encoder.embed_tokens.weight": "model.shared.weight",
        "model.decoder.embed_tokens.weight": "model.shared.weight",
    }

    def __init__(self, config: MinimalTransformerConfig):
        super().__init__(config)
        self.model = MinimalTransformerModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # The tied copies are never saved; naming them lets Trainer re-tie them when it reloads the best
        # checkpoint, instead of warning that they are "missing".
        self._keys_to_ignore_on_save = [
            key for key in self._tied_weights_keys if config.tie_word_embeddings or key != "lm_head.weight"
        ]
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.shared

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def get_encoder(self, modality: str | None = None) -> nn.Module:
        """The text encoder; for another modality ("image", "audio"), transformers' lookup, which finds none."""
        return self.model.encoder if modality is None else super().get_encoder(modality=modality)

    def get_decoder(self) -> MinimalTransformerDecoder:
        return self.model.decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        past_key_values: Cache | None = None,
        num_items_in_batch: int | torch.Tensor | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs,
    ) -> Seq2SeqLMOutput | tuple:
        """Next-token logits; with `labels` (-100 = ignore) also the mean cross-entropy over labelled tokens.

        `logits_to_keep`: project only the last n positions (generate passes 1: each step needs one), or the
        positions a 1-D tensor lists; 0 keeps all.
        """
        cache = cache_argument(cache, past_key_values, "MinimalTransformerForConditionalGeneration.forward")
        keep = slice(-logits_to_keep, None) if isinstance(logits_to_keep, int) else logits_to_keep
        if labels is not None and not (isinstance(logits_to_keep, int) and logits_to_keep == 0):
            raise ValueError("logits_to_keep cannot be combined with labels: the loss needs every position's logits.")
        if labels is not None:
            # Checked here, before the shift, so that the error names labels and not decoder_input_ids.
            check_token_ids(labels.masked_fill(labels == -100, 0), self.lm_head.out_features, "labels (-100 = ignored)")
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
        )
        logits = self.lm_head(outputs.last_hidden_state[:, keep])  # (B, T or logits_to_keep, vocab_size)
        loss = None
        if labels is not None:
            # Trainer passes num_items_in_batch so that gradient accumulation averages over all tokens, not batches.
            reduction = "mean" if num_items_in_batch is None else "sum"
            loss = F.cross_entropy(
                logits.flatten(0, 1).float(), labels.flatten().to(logits.device), ignore_index=-100, reduction=reduction
            )
            if num_items_in_batch is not None:
                loss = loss / num_items_in_batch
        output = Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
            **{_CACHE_FIELD: getattr(outputs, _CACHE_FIELD)},
        )
        return output if return_dict is not False else output.to_tuple()

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Used by DataCollatorForSeq2Seq to build decoder_input_ids."""
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def _reorder_cache(self, cache: Cache, beam_idx: torch.LongTensor) -> Cache:
        """generate()'s beam-search hook: after each step, gather the self-attention keys/values of the kept beams.

        The cross-attention keys/values are left in place: generate repeats the encoder output once per beam and a
        beam never moves to another sentence, so every beam of a sentence holds the same rows, and gathering them
        (the default) only copied the whole encoder-side cache at every step.
        """
        if isinstance(cache, EncoderDecoderCache):
            cache.self_attention_cache.reorder_cache(beam_idx)
        else:
            cache.reorder_cache(beam_idx)
        return cache


__all__ = [
    "MinimalTransformerForConditionalGeneration",
    "MinimalTransformerModel",
    "MinimalTransformerPreTrainedModel",
    "scaled_dot_product_attention",
    "sinusoidal_position_encoding",
]
