"""Serve a trained MinimalTransformer with CTranslate2, the C++ inference engine for seq2seq Transformers.

Export (needs torch, transformers and the `serve` extra):

    python -m hf_minimal.serving.ctranslate2 outputs/g2p-cpu outputs/g2p-cpu-ct2 [--quantization int8]

Serve with `ctranslate2` and `tokenizers` alone (torch and transformers are not imported):

    engine = Engine("outputs/g2p-cpu-ct2")
    engine.translate(["hello", "world"])            # ["HH EH L OW", "W ER L D"]

The export is CTranslate2's own `Converter` machinery (converter.py); the folder gets `tokenizer.json` and our
metadata beside the model. `Engine.translate` then gives `generate`'s tokens: greedy, and beam search with
generate's stopping rule.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from .decoding import length_sorted_batches, max_decoding_length, nbest_beams

METADATA = "hf_minimal_ctranslate2.json"  # what the engine needs beyond CTranslate2's config: the table's length
DEFAULT_MAX_POSITIONS = 1024
QUANTIZATIONS = ("float32", "int8", "int8_float32", "int16", "float16", "bfloat16", "int8_float16", "int8_bfloat16")
# CTranslate2 stops a beam search once patience x num_beams hypotheses have finished. patience 1 is exactly generate's
# early_stopping=True (tests/test_ctranslate2.py). generate's default keeps searching while a running beam might
# still win, a rule CTranslate2 lacks; patience 2 is the smallest that gives its results on the G2P test words, and
# each step up costs speed (docs/performance.md).
BEAM_PATIENCE = 2.0


def source_digest(model_dir: str | os.PathLike) -> str | None:
    """SHA-256 of what an export is made from (a folder's config.json, model.safetensors and tokenizer.json); None
    for a Hub id. Recorded in the export's metadata, so that an export can be matched to its model folder."""
    folder = Path(model_dir)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()


def is_export_of(export_dir: str | os.PathLike, digest: str | None) -> bool:
    """Whether `export_dir` holds a complete export of the model folder whose `source_digest` is `digest`."""
    folder = Path(export_dir)
    if digest is None or not (folder / "model.bin").is_file() or not (folder / METADATA).is_file():
        return False
    return json.loads((folder / METADATA).read_text()).get("source_sha256") == digest


def export(
    model_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    quantization: str | None = None,
    max_positions: int = DEFAULT_MAX_POSITIONS,
    force: bool = False,
) -> Path:
    """Write a CTranslate2 model folder for the MinimalTransformer in `model_dir` (a folder or Hub id with its
    tokenizer): CTranslate2's model.bin, config.json and vocabulary, plus tokenizer.json and our metadata.

    `quantization`: CTranslate2's weight type (None keeps float32; "int8" is 4x smaller and faster on CPU).
    `max_positions`: rows of the position table, which bounds source length and decoding length alike.
    """
    from transformers import AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer

    import hf_minimal  # registers the Auto classes

    from .converter import MinimalTransformerConverter

    if quantization is not None and quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization={quantization!r} is not one of CTranslate2's types {QUANTIZATIONS}.")
    output = Path(output_dir)
    if output.exists() and not force:
        raise FileExistsError(f"{output} already exists: choose another folder, or pass force=True (--force).")
    config = AutoConfig.from_pretrained(model_dir)
    if not isinstance(config, hf_minimal.MinimalTransformerConfig):
        raise ValueError(
            f"{model_dir} holds a {config.model_type!r} model, not a MinimalTransformer: convert it with "
            "CTranslate2's own converter (ct2-transformers-converter --model ...)."
        )
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, config=config).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    converter = MinimalTransformerConverter(model, tokenizer, _tokenizer_json(model_dir), max_positions)
    converter.convert(str(output), quantization=quantization, force=True)
    metadata = {
        "max_positions": max_positions,
        "quantization": quantization or "float32",
        "source": str(model_dir),
        "source_sha256": source_digest(model_dir),
    }
    (output / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    return output


def _tokenizer_json(model_dir: str | os.PathLike) -> str:
    """The tokenizer.json of a folder or Hub repo (the serving side loads it with `tokenizers` alone)."""
    folder = Path(model_dir)
    if folder.is_dir():
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: the engine needs the model's fast tokenizer (tokenizer.json).")
        return str(path)
    from huggingface_hub import hf_hub_download

    return hf_hub_download(str(model_dir), "tokenizer.json")


class Engine:
    """A CTranslate2 translator over an exported folder, with its tokenizer: text in, text out.

    `workers` translator replicas (default: one per CPU core) each run `threads` threads; batches of similar
    length are spread over the replicas. Imports only ctranslate2 and tokenizers.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike,
        workers: int | None = None,
        threads: int = 1,
        device: str = "cpu",
        compute_type: str = "default",
    ):
        import ctranslate2
        from tokenizers import Tokenizer

        folder = Path(model_dir)
        if not ctranslate2.contains_model(str(folder)):
            raise FileNotFoundError(
                f"No CTranslate2 model in {folder}: export one with "
                f"`python -m hf_minimal.serving.ctranslate2 MODEL_DIR {folder}`."
            )
        for name in ("tokenizer.json", METADATA):
            if not (folder / name).is_file():
                raise FileNotFoundError(f"{folder / name} is missing: export the model again with hf_minimal.")
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_padding()  # padding or truncation saved in tokenizer.json would change the input
        self.tokenizer.no_truncation()
        self.max_positions = json.loads((folder / METADATA).read_text())["max_positions"]
        self.workers = workers or os.cpu_count() or 1
        # compute_type "default" keeps the type the weights were saved in ("auto" would quietly pick int8).
        self.translator = ctranslate2.Translator(
            str(folder), device=device, compute_type=compute_type, inter_threads=self.workers, intra_threads=threads
        )

    def translate(
        self,
        texts: Sequence[str],
        num_beams: int = 1,
        batch_size: int | None = None,
        max_length: int | None = None,
        early_stopping: bool = False,
    ) -> list[str]:
        """Decoded outputs for `texts`, in order: greedy (num_beams=1) or beam search, as `generate` decodes.

        Texts are batched by length (`batch_size` each, default 128, the fastest for the G2P model on CPU:
        docs/performance.md). `max_length` bounds the decoder sequence, start token included, as in `generate`;
        by default decoding.max_decoding_length of the batch's longest source. `early_stopping` as in generate:
        True ends a beam search when num_beams hypotheses have finished (exactly generate's), False searches on
        (BEAM_PATIENCE).
        """
        if num_beams < 1:
            raise ValueError(f"num_beams={num_beams} must be at least 1.")
        patience = 1.0 if early_stopping or num_beams == 1 else BEAM_PATIENCE
        results = self._translate(
            texts, batch_size, max_length, beam_size=num_beams, patience=patience, length_penalty=1.0
        )
        return self._decode([result.hypotheses[0] for result in results])

    def nbest(
        self, texts: Sequence[str], nbest: int, num_beams: int | None = None, batch_size: int | None = None
    ) -> list[list[tuple[str, float]]]:
        """The `nbest` most probable outputs of each text, best first, with their log-probabilities (the sum over
        the output's tokens, </s> included): g2p.transcribe_nbest's variants and scores, from a beam search of
        `num_beams` (decoding.nbest_beams) that ranks by log-probability and stops once that many have finished."""
        beams = nbest_beams(nbest, num_beams)
        results = self._translate(
            texts,
            batch_size,
            None,
            beam_size=beams,
            # All `beams` finished ones, then the best `nbest`: CTranslate2 stops once num_hypotheses x patience have
            # finished, and generate (early_stopping=True) once num_beams have.
            num_hypotheses=beams,
            patience=1.0,
            length_penalty=0.0,  # rank by the sum of log-probabilities, as a probability mass needs
            return_scores=True,
        )
        texts = iter(self._decode([hypothesis for result in results for hypothesis in result.hypotheses[:nbest]]))
        return [[(next(texts), score) for score in result.scores[:nbest]] for result in results]

    def _translate(self, texts: Sequence[str], batch_size: int | None, max_length: int | None, **options) -> list:
        """CTranslate2's results for `texts`, in their order, from length-sorted batches decoded in parallel."""
        sources = [encoding.tokens for encoding in self.tokenizer.encode_batch(list(texts))]
        batches = length_sorted_batches([len(source) for source in sources], batch_size or 128)
        pending = []
        for batch in batches:
            longest = max(len(sources[i]) for i in batch)
            length = max_length if max_length is not None else max_decoding_length(longest)
            if max(longest, length) > self.max_positions:
                i = max(batch, key=lambda i: len(sources[i]))
                raise ValueError(
                    f"{texts[i][:40]!r}... needs {max(longest, length)} positions; this export has "
                    f"{self.max_positions}. Export again with --max_positions {2 * max(longest, length)}."
                )
            pending.append(
                self.translator.translate_batch(
                    [sources[i] for i in batch],
                    max_decoding_length=length - 1,  # generated tokens: the start token is not one
                    min_decoding_length=0,
                    max_input_length=0,  # never truncate (its default cuts at 1024 tokens)
                    max_batch_size=0,
                    asynchronous=True,  # every batch queued at once: the replicas take them in parallel
                    **options,
                )
            )
        results = [None] * len(sources)
        for batch, futures in zip(batches, pending, strict=True):
            for i, future in zip(batch, futures, strict=True):
                results[i] = future.result()
        return results

    def _decode(self, hypotheses: list[list[str]]) -> list[str]:
        # Rows past the tokenizer (embeddings padded to a round size) decode to nothing, as in generate's decode.
        ids = [[i for i in map(self.tokenizer.token_to_id, tokens) if i is not None] for tokens in hypotheses]
        return self.tokenizer.decode_batch(ids, skip_special_tokens=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hf_minimal.serving.ctranslate2",
        description="Export a trained MinimalTransformer folder (or Hub id) to a CTranslate2 model folder.",
    )
    parser.add_argument(
        "model_dir", help="a folder written by save_pretrained / examples/g2p/train_g2p.py, or a Hub id"
    )
    parser.add_argument("output_dir", help="the CTranslate2 folder to write")
    parser.add_argument("--quantization", choices=QUANTIZATIONS, help="weight type (default: float32)")
    parser.add_argument(
        "--max_positions", type=int, default=DEFAULT_MAX_POSITIONS, help="position table rows (source/output bound)"
    )
    parser.add_argument("--force", action="store_true", help="overwrite output_dir")
    args = parser.parse_args(argv)
    try:
        output = export(args.model_dir, args.output_dir, args.quantization, args.max_positions, args.force)
    except (OSError, ValueError) as error:
        print(f"Cannot export {args.model_dir!r}: {error}", file=sys.stderr)
        return 1
    print(
        f"wrote {output} ({args.quantization or 'float32'}); "
        f"serve it with hf_minimal.serving.ctranslate2.Engine('{output}')"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
