"""Configuration of the encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Defaults are the paper's base model (Table 3): N = 6, d_model = 512, d_ff = 2048, h = 8, P_drop = 0.1,
post-LN sublayers, ReLU feed-forward, embeddings scaled by sqrt(d_model) and one weight matrix shared by
both embeddings and the pre-softmax projection (Section 3.4).
"""

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN


class MinimalTransformerConfig(PreTrainedConfig):
    r"""Configuration for [`MinimalTransformerModel`] and [`MinimalTransformerForConditionalGeneration`].

    Args:
        vocab_size: size of the one vocabulary shared by source and target (Section 3.4).
        d_model: width of every sublayer output and of the embeddings (Section 3.1).
        encoder_layers / decoder_layers: N, identical layers per stack (Section 3.1).
        num_heads: h, parallel attention heads; d_k = d_v = d_model / h (Section 3.2.2).
        d_ff: inner width of the position-wise feed-forward network (Section 3.3).
        dropout: P_drop on sublayer outputs and on embeddings + positional encodings (Section 5.4).
        attention_dropout: dropout on the attention weights (not in the paper, so 0.0).
        activation: the FFN non-linearity; the paper's max(0, x) is "relu".
        max_position_embeddings: positions precomputed at start-up; longer inputs still work (Section 3.5).
        layer_norm_eps: epsilon of every LayerNorm.
        scale_embedding: multiply embeddings by sqrt(d_model) (Section 3.4).
        norm_first: False is the paper's post-LN LayerNorm(x + Sublayer(x)); True is pre-LN
            x + Sublayer(LayerNorm(x)) with one final LayerNorm per stack.
        tie_word_embeddings: share the embedding matrix with the pre-softmax projection (Section 3.4).
        init_std: std of the normal init of the embeddings; None means d_model ** -0.5, so that the
            sqrt(d_model)-scaled embeddings start with unit variance, like the positional encodings.
    """

    model_type = "minimal_transformer"
    keys_to_ignore_at_inference = ["cache", "past_key_values"]
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "num_heads",
        "num_hidden_layers": "encoder_layers",
    }

    vocab_size: int = 37000  # the paper's shared BPE vocabulary for WMT 2014 En-De (Section 5.1)
    d_model: int = 512
    encoder_layers: int = 6
    decoder_layers: int = 6
    num_heads: int = 8
    d_ff: int = 2048
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation: str = "relu"
    max_position_embeddings: int = 512
    layer_norm_eps: float = 1e-5
    scale_embedding: bool = True
    norm_first: bool = False
    tie_word_embeddings: bool = True
    init_std: float | None = None
    use_cache: bool = True
    is_encoder_decoder: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | None = 2
    decoder_start_token_id: int | None = 1

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)  # applies attribute_map aliases (hidden_size=...) first
        if self.init_std is None and _is_int(self.d_model) and self.d_model > 0:
            self.init_std = self.d_model**-0.5
        self._validate_values()

    def _validate_values(self) -> None:
        """Raise ValueError naming the field, its value and what is allowed."""
        for name in ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "num_heads", "d_ff"):
            _require(
                _is_int(getattr(self, name)) and getattr(self, name) > 0,
                name,
                getattr(self, name),
                "a positive integer",
            )
        _require(
            _is_int(self.max_position_embeddings) and self.max_position_embeddings > 0,
            "max_position_embeddings",
            self.max_position_embeddings,
            "a positive integer",
        )
        _require(
            self.d_model % self.num_heads == 0,
            "d_model",
            self.d_model,
            f"a multiple of num_heads={self.num_heads} (d_k = d_model / num_heads, Section 3.2.2)",
        )
        _require(self.d_model % 2 == 0, "d_model", self.d_model, "an even number (sin/cos pairs, Section 3.5)")
        for name in ("dropout", "attention_dropout"):
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and 0.0 <= value < 1.0, name, value, "a number in [0, 1)")
        _require(
            self.activation in ACT2FN,
            "activation",
            self.activation,
            "a name in transformers.activations.ACT2FN, e.g. 'relu' (the paper), 'gelu', 'silu'",
        )
        _require(
            isinstance(self.layer_norm_eps, (int, float)) and self.layer_norm_eps > 0,
            "layer_norm_eps",
            self.layer_norm_eps,
            "a positive number",
        )
        _require(
            isinstance(self.init_std, (int, float)) and self.init_std > 0,
            "init_std",
            self.init_std,
            "a positive number",
        )
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            for token_id in value if isinstance(value, (list, tuple)) else [value]:
                _require(
                    token_id is None or (_is_int(token_id) and 0 <= token_id < self.vocab_size),
                    name,
                    value,
                    f"None or a token id in [0, vocab_size={self.vocab_size})",
                )


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"MinimalTransformerConfig: {name}={value!r} is invalid; it must be {allowed}.")


__all__ = ["MinimalTransformerConfig"]
