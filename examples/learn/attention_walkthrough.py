"""Scaled dot-product attention by hand, then the same function inside one multi-head attention layer.

Part 1 is the textbook example (three words, d_k = 4) computed with the package's own
`scaled_dot_product_attention` in float64, next to the course's NumPy softmax, which does not subtract the
row maximum: ours does (so large scores cannot overflow) and gives the same numbers.
Part 2 runs a sentence-sized input through one `MinimalTransformerAttention` layer, shows the per-head
weights, checks that the layer is exactly "split into heads -> the same function -> concatenate -> W^O",
and repeats it with the causal mask the decoder uses (Section 3.2.3).

Run: python examples/learn/attention_walkthrough.py
"""

import json

import numpy as np
import torch

from hf_minimal import MinimalTransformerConfig, scaled_dot_product_attention
from hf_minimal.modeling_minimal_transformer import MinimalTransformerAttention, causal_mask

Q = K = [[1, 0, 1, 0], [0, 1, 0, 1], [1, 1, 1, 1]]  # three words, d_k = 4; self-attention, so Q = K
V = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8], [0.9, 1.0, 1.1, 1.2]]


def print_matrix(title: str, matrix: torch.Tensor | np.ndarray) -> None:
    """One row per line, as JSON: every float printed with its shortest exact (round-trip) representation."""
    print(title)
    for row in np.asarray(matrix).tolist():
        print("  " + json.dumps(row))


def course_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The course's NumPy version, kept as written there: exp of the raw scores, no max subtracted."""
    scores = q @ k.T / np.sqrt(k.shape[-1])
    weights = np.exp(scores) / np.exp(scores).sum(axis=-1, keepdims=True)
    return weights @ v


def textbook_example() -> None:
    print("== Part 1: the textbook example, Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V ==")
    q, k, v = (torch.tensor(m, dtype=torch.float64) for m in (Q, K, V))
    output, weights = scaled_dot_product_attention(q, k, v)
    print_matrix("scores Q K^T / sqrt(d_k):", q @ k.T / k.size(-1) ** 0.5)
    print_matrix("attention weights (float64, each row sums to 1):", weights)
    print_matrix("Attention(Q, K, V) (float64):", output)
    course = course_attention(np.array(Q, float), np.array(K, float), np.array(V, float))
    print(f"max |ours - course's softmax without max subtraction| = {np.abs(output.numpy() - course).max():.3g}")
    print("Word 1 scores (1, 0, 1): words 1 and 3 get e/(2e+1) each, word 2 gets 1/(2e+1), so its output is")
    print("(0.1e + 0.5 + 0.9e)/(2e + 1) = 0.5 in the first column: a weighted mean of the rows of V.")


def layer_example() -> None:
    print()
    print("== Part 2: one multi-head attention layer (Section 3.2.2) on a sentence-sized input ==")
    words = "the cat sat on the mat because it was tired".split()
    config = MinimalTransformerConfig(vocab_size=32, d_model=32, num_heads=4, attention_dropout=0.0)
    torch.manual_seed(0)
    layer = MinimalTransformerAttention(config).double().eval()
    x = torch.randn(1, len(words), config.d_model, dtype=torch.float64)  # (B, T, d_model): stand-in embeddings

    with torch.no_grad():
        out, weights = layer(x, output_attentions=True)  # output_attentions picks the eager path: real weights
        # The layer by hand: project, split d_model into h heads of d_k, the same function, concatenate, W^O.
        B, T, H, d_k = 1, len(words), config.num_heads, config.d_model // config.num_heads
        q, k, v = (proj(x).view(B, T, H, d_k).transpose(1, 2) for proj in (layer.q_proj, layer.k_proj, layer.v_proj))
        heads, manual_weights = scaled_dot_product_attention(q, k, v)  # (B, H, T, d_k), (B, H, T, T)
        manual = layer.out_proj(heads.transpose(1, 2).reshape(B, T, H * d_k))

    print(f"sentence: {' '.join(words)!r} ({T} tokens), d_model = {config.d_model}, h = {H}, d_k = d_v = {d_k}")
    print(f"per-head weights shape (batch, heads, queries, keys): {tuple(weights.shape)}")
    row_sums = weights.sum(-1)
    print(f"every row sums to 1: max |row sum - 1| = {(row_sums - 1).abs().max().item():.3g}")
    print(f"layer == heads by hand with the same function: max |difference| = {(out - manual).abs().max():.3g}")
    print(f"weights equal too: max |difference| = {(weights - manual_weights).abs().max():.3g}")
    query = words.index("it")
    print(f"what {words[query]!r} attends to, per head (an untrained layer, so each head's pattern is arbitrary):")
    for head in range(H):
        row = weights[0, head, query].tolist()
        print(f"  head {head}: " + " ".join(f"{w}={p:.2f}" for w, p in zip(words, row, strict=True)))

    print()
    print("Causal (decoder) variant: position i may attend only to positions 0..i (Section 3.2.3).")
    causal = MinimalTransformerAttention(config, is_causal=True).double().eval()
    causal.load_state_dict(layer.state_dict())
    with torch.no_grad():
        _, causal_weights = causal(x, output_attentions=True)
        _, explicit = layer(x, attention_mask=causal_mask(T, T), output_attentions=True)
    future = causal_weights[0].triu(diagonal=1)
    print(f"weights on future positions: max = {future.abs().max().item():.3g}")
    print(f"rows still sum to 1: max |row sum - 1| = {(causal_weights.sum(-1) - 1).abs().max().item():.3g}")
    print(f"is_causal layer == explicit causal_mask: max |difference| = {(causal_weights - explicit).abs().max():.3g}")
    print_matrix(f"head 0, causal weights for {' '.join(words[:4])!r}:", causal_weights[0, 0, :4, :4])


if __name__ == "__main__":
    textbook_example()
    layer_example()
