"""Twin models for side-by-side benchmarks: ours and a MarianMTModel of exactly the same size (same trainable
parameters, ReLU, √d_model scale, tied embeddings, dropout), random batches for both, the workloads timed on both,
and a Marian holding a trained model's weights."""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from transformers import MarianConfig, MarianMTModel

from hf_minimal import MinimalTransformerConfig, MinimalTransformerForConditionalGeneration
from hf_minimal.modeling_minimal_transformer import shift_tokens_right

PAD, BOS, EOS = 0, 1, 2  # pad, decoder start and end-of-sequence ids for both models
MODELS = ("ours", "marian")


@dataclass
class Size:
    """One model size and the batches it is measured on."""

    name: str
    vocab_size: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    heads: int
    d_ff: int
    src_len: tuple[int, int]  # source lengths drawn uniformly from [min, max], EOS included
    tgt_len: tuple[int, int]  # target lengths, EOS included
    train_batch: int
    gen_batch: int
    gen_tokens: int  # tokens generated per word by greedy and beam search (EOS suppressed until then)
    reps: int  # default number of interleaved repetitions
    cache_row: bool = True  # measure the KV-cache speed-up (30 uncached tokens: slow for big models)
    max_positions: int = 64


# fmt: off
# G2P-sized, 3 + 3 layers: ~75 graphemes + phones, words of 8-12 letters.
G2P = Size("g2p", vocab_size=75, d_model=128, encoder_layers=3, decoder_layers=3, heads=4, d_ff=512,
           src_len=(8, 12), tgt_len=(7, 10), train_batch=64, gen_batch=64, gen_tokens=10, reps=15)
SIZES = {
    "g2p": G2P,
    "g2p31": replace(G2P, name="g2p31", decoder_layers=1),  # configs/recipes/g2p-cpu.json's size
    # The paper's base model (Table 3), on short sentences so that it finishes on 2 cores.
    "base": Size("base", vocab_size=37000, d_model=512, encoder_layers=6, decoder_layers=6, heads=8, d_ff=2048,
                 src_len=(10, 14), tgt_len=(10, 14), train_batch=8, gen_batch=4, gen_tokens=8, reps=7,
                 cache_row=False),
}
# fmt: on
def build(which: str, size: Size, dropout: float = 0.1) -> torch.nn.Module:
    """Ours or a MarianMTModel with the same trainable parameters, seeded identically."""
    torch.manual_seed(0)
    if which == "ours":
        config = MinimalTransformerConfig(
            vocab_size=size.vocab_size, d_model=size.d_model, encoder_layers=size.encoder_layers,
            decoder_layers=size.decoder_layers, num_heads=size.heads, d_ff=size.d_ff, dropout=dropout,
            attention_dropout=0.0, activation="relu",
            scale_embedding=True, tie_word_embeddings=True, max_position_embeddings=size.max_positions,
            pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=BOS,
        )  # fmt: skip
        return MinimalTransformerForConditionalGeneration(config)
    config = MarianConfig(
        vocab_size=size.vocab_size, d_model=size.d_model, encoder_layers=size.encoder_layers,
        decoder_layers=size.decoder_layers, encoder_attention_heads=size.heads, decoder_attention_heads=size.heads,
        encoder_ffn_dim=size.d_ff, decoder_ffn_dim=size.d_ff, activation_function="relu", dropout=dropout,
        attention_dropout=0.0, activation_dropout=0.0, scale_embedding=True, share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True, max_position_embeddings=size.max_positions, pad_token_id=PAD, bos_token_id=BOS,
        eos_token_id=EOS, decoder_start_token_id=BOS, forced_eos_token_id=None,
    )  # fmt: skip
    return MarianMTModel(config)


def param_counts(model: torch.nn.Module) -> dict:
    """Trainable parameters (shared ones once) and the frozen rest (Marian keeps its sinusoids as parameters)."""
    params = list(model.parameters())  # deduplicates tied weights
    return {
        "trainable": sum(p.numel() for p in params if p.requires_grad),
        "frozen": sum(p.numel() for p in params if not p.requires_grad),
    }


def make_batch(size: Size, batch: int, seed: int, device: str) -> dict:
    """Random words: ids in [3, vocab), EOS-terminated, right-padded; labels padded with -100."""
    g = torch.Generator().manual_seed(seed)

    def sequences(lengths: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        n = torch.randint(lengths[0], lengths[1] + 1, (batch,), generator=g)
        ids = torch.randint(3, size.vocab_size, (batch, int(n.max())), generator=g)
        positions = torch.arange(ids.size(1))[None]
        ids[positions == (n - 1)[:, None]] = EOS
        keep = positions < n[:, None]
        return ids.masked_fill(~keep, PAD), keep

    src, src_keep = sequences(size.src_len)
    tgt, tgt_keep = sequences(size.tgt_len)
    return {
        "input_ids": src.to(device),
        "attention_mask": src_keep.long().to(device),
        "labels": tgt.masked_fill(~tgt_keep, -100).to(device),
        "tokens": int(src_keep.sum() + tgt_keep.sum()),  # real (non-pad) source + target tokens
    }


def autocast(device: str, dtype: str):
    if dtype == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step_fn(model: torch.nn.Module, batch: dict, device: str, dtype: str) -> Callable[[], float]:
    """One optimiser step of Adam on the mean cross-entropy (the paper's optimiser, Section 5.3).

    The fused Adam kernel (transformers' default optimiser, adamw_torch_fused, is its AdamW twin) for both models."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-4, betas=(0.9, 0.98), eps=1e-9, fused=True)
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "labels")}

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = model(**inputs).loss
        loss.backward()
        optimizer.step()
        return loss

    return step


def forward_fn(model: torch.nn.Module, batch: dict, device: str, dtype: str) -> Callable[[], object]:
    """Encoder + decoder forward with teacher forcing, no cache, no gradients."""
    inputs = {
        "input_ids": batch["input_ids"],
        "attention_mask": batch["attention_mask"],
        "decoder_input_ids": shift_tokens_right(batch["labels"], PAD, BOS),
        "use_cache": False,
    }

    def forward() -> object:
        with torch.inference_mode(), autocast(device, dtype):
            return model(**inputs).logits

    return forward


def generate_fn(
    model: torch.nn.Module, batch: dict, device: str, dtype: str, tokens: int, num_beams: int, use_cache: bool = True
) -> Callable[[], object]:
    """generate() of exactly `tokens` new tokens per word (min_new_tokens suppresses EOS: equal work for both)."""
    kwargs = dict(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=tokens,
        min_new_tokens=tokens, num_beams=num_beams, do_sample=False, use_cache=use_cache,
    )  # fmt: skip

    def generate() -> object:
        with torch.inference_mode(), autocast(device, dtype):
            out = model.generate(**kwargs)
        assert out.shape[1] == tokens + 1, out.shape
        return out

    return generate


def marian_twin(model) -> MarianMTModel:
    """A MarianMTModel holding our trained weights: BART-style names match one to one, Marian's sinusoid (sines,
    then cosines) is replaced by our interleaved table, and its logits are checked against ours."""
    c = model.config
    if c.norm_first or c.layer_norm_eps != 1e-5 or not c.scale_embedding:
        raise SystemExit("The Marian twin needs a post-LN model with LayerNorm eps 1e-5 (MarianMT's only form).")
    if (c.pad_token_id, c.decoder_start_token_id, c.eos_token_id) != (PAD, BOS, EOS):
        raise SystemExit("The Marian twin needs the G2P tokenizer's special ids (pad 0, start 1, end 2).")
    size = replace(
        G2P, vocab_size=c.vocab_size, d_model=c.d_model, encoder_layers=c.encoder_layers,
        decoder_layers=c.decoder_layers, heads=c.num_heads, d_ff=c.d_ff, max_positions=c.max_position_embeddings,
    )  # fmt: skip
    marian = build("marian", size, dropout=0.0).eval()
    missing = set(marian.load_state_dict(model.state_dict(), strict=False).missing_keys)
    pe = model.model.encoder.embed_positions.pe.float()
    with torch.no_grad():
        for stack in (marian.model.encoder, marian.model.decoder):
            stack.embed_positions.weight.copy_(pe[: stack.embed_positions.weight.size(0)])
    expected = {"final_logits_bias", "model.encoder.embed_positions.weight", "model.decoder.embed_positions.weight"}
    if missing - expected:
        raise SystemExit(f"Marian twin: weights not carried over: {sorted(missing - expected)}")
    ids = torch.randint(4, c.vocab_size, (3, 9))
    labels = torch.randint(4, c.vocab_size, (3, 7))
    with torch.no_grad():
        ours, theirs = model(input_ids=ids, labels=labels).logits, marian(input_ids=ids, labels=labels).logits
    if not torch.allclose(ours, theirs, atol=1e-4):
        raise SystemExit(f"Marian twin: logits differ by {(ours - theirs).abs().max():.2e}; the mapping is wrong.")
    marian.generation_config.bad_words_ids = None  # generate exactly what ours does (no token banned)
    return marian
