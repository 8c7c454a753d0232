"""Serving: the decoding rules every decoder shares (`decoding`, pure Python) and CTranslate2 export and engine
(`ctranslate2`). Torch-free at serve time: `Engine` imports only ctranslate2 and tokenizers; the export imports
torch and transformers inside the function that needs them."""
