"""Serving: the decoding rules every decoder shares (`decoding`, pure Python), the CTranslate2 engine and `export`
(`ctranslate2`) and the converter the export runs (`converter`). Torch-free at serve time: `Engine` imports only
ctranslate2 and tokenizers; `export` imports torch, transformers and the converter when it is called."""
