"""An independent float64 NumPy implementation of the 2017 Transformer, written from the paper, for the tests.

It shares no code with the package: it reads only the weights (a state dict) and the config numbers.
"""

import math

import numpy as np


def positional_encoding(num_positions: int, d_model: int) -> np.ndarray:
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)), written as loops."""
    pe = np.zeros((num_positions, d_model))
    for pos in range(num_positions):
        for i in range(d_model // 2):
            angle = pos / 10000 ** (2 * i / d_model)
            pe[pos, 2 * i] = math.sin(angle)
            pe[pos, 2 * i + 1] = math.cos(angle)
    return pe


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, allowed: np.ndarray | None = None) -> np.ndarray:
    scores = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    return softmax(scores) @ v


def layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


class Reference:
    """Forward pass of MinimalTransformerForConditionalGeneration from its weights, in float64 NumPy."""

    def __init__(self, state_dict: dict, cfg) -> None:
        self.w = {k: v.detach().double().numpy() for k, v in state_dict.items()}
        self.cfg = cfg

    def linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[name + ".weight"].T + self.w[name + ".bias"]

    def ln(self, x: np.ndarray, name: str) -> np.ndarray:
        return layer_norm(x, self.w[name + ".weight"], self.w[name + ".bias"], self.cfg.layer_norm_eps)

    def mha(self, x: np.ndarray, memory: np.ndarray, allowed: np.ndarray, name: str) -> np.ndarray:
        h = self.cfg.num_heads
        d_k = self.cfg.d_model // h
        out = []
        for head in range(h):
            cols = slice(head * d_k, (head + 1) * d_k)
            q = self.linear(x, name + ".q_proj")[:, cols]
            k = self.linear(memory, name + ".k_proj")[:, cols]
            v = self.linear(memory, name + ".v_proj")[:, cols]
            out.append(attention(q, k, v, allowed))
        return self.linear(np.concatenate(out, axis=-1), name + ".out_proj")

    def ffn(self, x: np.ndarray, name: str) -> np.ndarray:
        return self.linear(np.maximum(0.0, self.linear(x, name + ".fc1")), name + ".fc2")

    def residual(self, x: np.ndarray, norm: str, fn) -> np.ndarray:
        if self.cfg.norm_first:
            return x + fn(self.ln(x, norm))
        return self.ln(x + fn(x), norm)

    def embed(self, ids: list[int]) -> np.ndarray:
        emb = self.w["model.shared.weight"][ids]
        scale = math.sqrt(self.cfg.d_model) if self.cfg.scale_embedding else 1.0
        return emb * scale + positional_encoding(len(ids), self.cfg.d_model)

    def encode(self, ids: list[int]) -> np.ndarray:
        """One unpadded source sequence -> (S, d_model)."""
        x = self.embed(ids)
        for i in range(self.cfg.encoder_layers):
            p = f"model.encoder.layers.{i}"
            x = self.residual(x, p + ".self_attn_layer_norm", lambda y, p=p: self.mha(y, y, None, p + ".self_attn"))
            x = self.residual(x, p + ".final_layer_norm", lambda y, p=p: self.ffn(y, p))
        return self.ln(x, "model.encoder.layer_norm") if self.cfg.norm_first else x

    def logits(self, src: list[int], tgt: list[int]) -> np.ndarray:
        """One unpadded source and decoder input -> (T, vocab_size) logits."""
        memory = self.encode(src)
        x = self.embed(tgt)
        causal = np.tril(np.ones((len(tgt), len(tgt)), dtype=bool))
        for i in range(self.cfg.decoder_layers):
            p = f"model.decoder.layers.{i}"
            x = self.residual(x, p + ".self_attn_layer_norm", lambda y, p=p: self.mha(y, y, causal, p + ".self_attn"))
            x = self.residual(
                x, p + ".encoder_attn_layer_norm", lambda y, p=p: self.mha(y, memory, None, p + ".encoder_attn")
            )
            x = self.residual(x, p + ".final_layer_norm", lambda y, p=p: self.ffn(y, p))
        if self.cfg.norm_first:
            x = self.ln(x, "model.decoder.layer_norm")
        return x @ self.w["model.shared.weight"].T  # the pre-softmax projection is the embedding (Section 3.4)
