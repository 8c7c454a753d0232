"""Configuration of the encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

Defaults are the paper's base model (Table 3): N = 6, d_model = 512, d_ff = 2048, h = 8, P_drop = 0.1,
post-LN sublayers, ReLU feed-forward, embeddings scaled by sqrt(d_model) and one weight matrix shared by
both embeddings and the pre-softmax projection (Section 3.4).
"""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig
from transformers.activations import ACT2FN


@strict
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

    As transformers' built-in configs, the fields are checked by huggingface_hub's `@strict`: a value of the wrong
    type raises `StrictDataclassFieldValidationError` naming the field, the type and the value; the `validate_*`
    methods check values and the rules between fields (`StrictDataclassClassValidationError`), when the config is
    built and again when it is saved.
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
    dropout: float | int = 0.1
    attention_dropout: float | int = 0.0
    activation: str = "relu"
    max_position_embeddings: int = 512
    layer_norm_eps: float | int = 1e-5
    scale_embedding: bool = True
    norm_first: bool = False
    tie_word_embeddings: bool = True
    init_std: float | int | None = None
    use_cache: bool = True
    is_encoder_decoder: bool = True
    pad_token_id: int | None = 0
    bos_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 1

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)  # applies attribute_map aliases (hidden_size=...) first
        if self.init_std is None and self.d_model > 0:
            self.init_std = self.d_model**-0.5

    def validate_sizes(self) -> None:
        """N, d_model, h, d_ff and the vocabulary are counts (Table 3); so is the precomputed position table."""
        counts = ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "num_heads", "d_ff")
        for name in (*counts, "max_position_embeddings"):
            _require(getattr(self, name) > 0, name, getattr(self, name), "a positive integer")

    def validate_architecture(self) -> None:
        """d_k = d_model / h (Section 3.2.2) and sin/cos pairs (Section 3.5)."""
        if self.num_heads <= 0:
            return  # validate_sizes names it
        _require(
            self.d_model % self.num_heads == 0,
            "d_model",
            self.d_model,
            f"a multiple of num_heads={self.num_heads} (d_k = d_model / num_heads, Section 3.2.2)",
        )
        _require(self.d_model % 2 == 0, "d_model", self.d_model, "an even number (sin/cos pairs, Section 3.5)")

    def validate_numbers(self) -> None:
        """Dropout rates are probabilities below 1; the LayerNorm epsilon and the init std are positive."""
        for name in ("dropout", "attention_dropout"):
            _require(0.0 <= getattr(self, name) < 1.0, name, getattr(self, name), "a number in [0, 1)")
        _require(self.layer_norm_eps > 0, "layer_norm_eps", self.layer_norm_eps, "a positive number")
        _require(self.init_std is None or self.init_std > 0, "init_std", self.init_std, "a positive number")

    def validate_activation(self) -> None:
        _require(
            self.activation in ACT2FN,
            "activation",
            self.activation,
            "a name in transformers.activations.ACT2FN, e.g. 'relu' (the paper), 'gelu', 'silu'",
        )

    def validate_token_ids(self) -> None:
        """Special token ids index the shared vocabulary (transformers' own check only warns)."""
        for name in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id"):
            value = getattr(self, name)
            for token_id in value if isinstance(value, list) else [value]:
                _require(
                    token_id is None or 0 <= token_id < self.vocab_size,
                    name,
                    value,
                    f"None or a token id in [0, vocab_size={self.vocab_size})",
                )


def _require(ok: bool, name: str, value: object, allowed: str) -> None:
    if not ok:
        raise ValueError(f"MinimalTransformerConfig: {name}={value!r} is invalid; it must be {allowed}.")


__all__ = ["MinimalTransformerConfig"]
