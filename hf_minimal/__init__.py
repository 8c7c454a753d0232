"""hf_minimal: the exact "Attention Is All You Need" Transformer as a first-class Hugging Face model.

Three parts, each with one import rule (tests/test_layout.py checks them):

    the model    configuration_minimal_transformer.py, modeling_minimal_transformer.py: shipped to the Hub as remote
                 code, so they import only the standard library, torch and transformers (with huggingface_hub,
                 which transformers brings) and each other
    the tasks    g2p/ (grapheme-to-phoneme: data, tokenizer, metrics, the hf-minimal-g2p tool, shipped models) and
                 pairs.py (any task from a file of pairs): they reach the model through `hf_minimal`'s public names
                 and transformers' Auto classes, never through the model files
    serving      serving/: the decoding rules (decoding.py) and the CTranslate2 engine (ctranslate2.py) import no
                 torch or transformers, so a machine with only ctranslate2 and tokenizers serves; the export
                 (converter.py) needs torch. Serving knows no task.

Importing the package registers the model with the Auto classes (idempotently), so that `AutoConfig`, `AutoModel`
and `AutoModelForSeq2SeqLM` resolve `model_type="minimal_transformer"`, and marks the classes for `auto_map` so
saved and pushed folders load with `trust_remote_code=True`.

The import itself is light: torch and transformers load when something needs them. The registration happens at once
when transformers is already imported, and otherwise right after transformers' own import, so the Auto classes
always see the model; the G2P command and the CTranslate2 engine then start without paying for either library.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys

__version__ = "0.1.0"

# Public name -> the model file defining it (imported on first use: PEP 562).
_PUBLIC = {
    "MinimalTransformerConfig": "configuration_minimal_transformer",
    "MinimalTransformerForConditionalGeneration": "modeling_minimal_transformer",
    "MinimalTransformerModel": "modeling_minimal_transformer",
    "MinimalTransformerPreTrainedModel": "modeling_minimal_transformer",
    "scaled_dot_product_attention": "modeling_minimal_transformer",
    "sinusoidal_position_encoding": "modeling_minimal_transformer",
}
__all__ = sorted(_PUBLIC)

_MODEL_FILES = tuple(f"{__name__}.{name}" for name in sorted(set(_PUBLIC.values())))
_executing: set[str] = set()  # model files whose code is running now (each imports transformers part-way through)
_registered = False


def _register_when_ready() -> None:
    """Register with the Auto classes once transformers is imported and neither model file is half-imported."""
    global _registered
    if _registered or sys.modules.get("transformers") is None or _executing:
        return
    try:
        from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

        from .configuration_minimal_transformer import MinimalTransformerConfig
        from .modeling_minimal_transformer import MinimalTransformerForConditionalGeneration, MinimalTransformerModel
    except ModuleNotFoundError as error:
        if error.name != "torch":  # transformers without torch has no models to register; anything else is a bug
            raise
        return
    if _registered:  # importing the model files above registered already (their own import calls this)
        return
    # exist_ok makes a second import (or a reload) harmless.
    AutoConfig.register(MinimalTransformerConfig.model_type, MinimalTransformerConfig, exist_ok=True)
    AutoModel.register(MinimalTransformerConfig, MinimalTransformerModel, exist_ok=True)
    AutoModelForSeq2SeqLM.register(MinimalTransformerConfig, MinimalTransformerForConditionalGeneration, exist_ok=True)
    MinimalTransformerConfig.register_for_auto_class()
    MinimalTransformerModel.register_for_auto_class("AutoModel")
    MinimalTransformerForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")
    _registered = True
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, _RegisterAfterImport)]


class _RegisterAfterImport(importlib.abc.MetaPathFinder):
    """Runs `_register_when_ready` right after transformers or one of the model files finishes importing: it finds
    the module with the finders behind it and wraps the loader it gets (a post-import hook)."""

    def find_spec(self, name, path, target=None):
        if name != "transformers" and name not in _MODEL_FILES:
            return None
        for finder in sys.meta_path[sys.meta_path.index(self) + 1 :]:
            spec = finder.find_spec(name, path, target) if hasattr(finder, "find_spec") else None
            if spec is not None:
                if hasattr(spec.loader, "exec_module"):
                    spec.loader = _ThenRegister(spec.loader)
                return spec
        return None


class _ThenRegister(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        module.__loader__ = module.__spec__.loader = self.loader  # the module keeps its real loader (get_source)
        _executing.add(module.__name__)
        try:
            self.loader.exec_module(module)
        finally:
            _executing.discard(module.__name__)
        _register_when_ready()

    def __getattr__(self, name: str):
        return getattr(self.loader, name)


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        module = importlib.import_module(f".{_PUBLIC[name]}", __name__)
    except ModuleNotFoundError as error:
        if error.name not in ("torch", "transformers"):
            raise
        raise ImportError(
            f"hf_minimal.{name} needs torch and transformers ({error}): install them (CPU torch: pip install torch "
            "--index-url https://download.pytorch.org/whl/cpu). Without them only the CTranslate2 engine "
            "(hf_minimal.serving.ctranslate2.Engine) and the G2P command's CTranslate2 path work."
        ) from error
    globals()[name] = value = getattr(module, name)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


# Modules that moved when the package was laid out in its three parts: importing the old name says where they went.
_MOVED = {f"{__name__}.{name}": f"{__name__}.serving.{name}" for name in ("ctranslate2", "decoding")}


class _MovedModules(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name in _MOVED:
            raise ModuleNotFoundError(f"{name} moved to {_MOVED[name]}: import that (or python -m it).", name=name)
        return None


if not any(isinstance(finder, _RegisterAfterImport) for finder in sys.meta_path):
    sys.meta_path.insert(0, _RegisterAfterImport())
if not any(isinstance(finder, _MovedModules) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModules())  # last: asked only for names no other finder has
_register_when_ready()
