"""hf_minimal: the exact "Attention Is All You Need" Transformer as a first-class Hugging Face model.

Importing the package registers the model with the Auto classes (idempotently), so that
`AutoConfig`, `AutoModel` and `AutoModelForSeq2SeqLM` resolve `model_type="minimal_transformer"`,
and marks the classes for `auto_map` so saved and pushed folders load with `trust_remote_code=True`.
"""

try:
    import torch  # noqa: F401  (first: without it, transformers would import only to say so)
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

    from .configuration_minimal_transformer import MinimalTransformerConfig
    from .modeling_minimal_transformer import (
        MinimalTransformerForConditionalGeneration,
        MinimalTransformerModel,
        MinimalTransformerPreTrainedModel,
        scaled_dot_product_attention,
        sinusoidal_position_encoding,
    )
except ModuleNotFoundError as error:
    # A serving process with only ctranslate2 and tokenizers installed can still use hf_minimal.ctranslate2.Engine;
    # any other missing module is a real error.
    if error.name not in ("torch", "transformers"):
        raise
    _MISSING = error
else:
    _MISSING = None

__version__ = "0.1.0"


def _register() -> None:
    # exist_ok makes a second import (or a reload) harmless.
    AutoConfig.register(MinimalTransformerConfig.model_type, MinimalTransformerConfig, exist_ok=True)
    AutoModel.register(MinimalTransformerConfig, MinimalTransformerModel, exist_ok=True)
    AutoModelForSeq2SeqLM.register(MinimalTransformerConfig, MinimalTransformerForConditionalGeneration, exist_ok=True)
    MinimalTransformerConfig.register_for_auto_class()
    MinimalTransformerModel.register_for_auto_class("AutoModel")
    MinimalTransformerForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")


def __getattr__(name: str):
    if _MISSING is not None and name in __all__:
        raise ImportError(
            f"hf_minimal.{name} needs torch and transformers ({_MISSING}): install them (CPU torch: pip install "
            "torch --index-url https://download.pytorch.org/whl/cpu). Without them only hf_minimal.ctranslate2.Engine "
            "works."
        ) from _MISSING
    raise AttributeError(f"module 'hf_minimal' has no attribute {name!r}")


if _MISSING is None:
    _register()

__all__ = [
    "MinimalTransformerConfig",
    "MinimalTransformerForConditionalGeneration",
    "MinimalTransformerModel",
    "MinimalTransformerPreTrainedModel",
    "scaled_dot_product_attention",
    "sinusoidal_position_encoding",
]
