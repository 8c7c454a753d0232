"""torch.compile (inductor, the default backend) runs training steps with the eager model's loss and gradients."""

import copy

import torch
from conftest import tiny_config

from hf_minimal import MinimalTransformerForConditionalGeneration


def batch() -> dict:
    """Two sources of different lengths (one padded) and labels with an ignored (-100) tail."""
    input_ids = torch.tensor([[5, 6, 7, 8, 9, 2], [10, 11, 12, 2, 0, 0]])
    labels = torch.tensor([[13, 14, 15, 2], [16, 17, 2, -100]])
    return {"input_ids": input_ids, "attention_mask": (input_ids != 0).long(), "labels": labels}


def test_compiled_training_step_matches_eager():
    torch.manual_seed(0)
    # One layer per stack keeps the inductor compile short; dropout is 0, so both runs are deterministic.
    eager = MinimalTransformerForConditionalGeneration(tiny_config(encoder_layers=1, decoder_layers=1)).train()
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin, fullgraph=True)  # fullgraph: one graph, no silent fallback to eager pieces
    # SGD, not Adam: Adam scales gradients that are zero in exact arithmetic (the key bias: softmax ignores a shift
    # of every score) but ~1e-9 in floats up to full-size steps, so compiled and eager rounding would diverge.
    optimizers = [torch.optim.SGD(m.parameters(), lr=0.1) for m in (eager, twin)]
    inputs, eager_losses = batch(), []
    for step in range(2):  # the second step runs on weights the optimiser changed through the compiled graph
        losses = []
        for model, optimizer in zip((eager, compiled), optimizers, strict=True):
            optimizer.zero_grad()
            loss = model(**inputs).loss
            loss.backward()
            losses.append(loss.item())
        assert abs(losses[0] - losses[1]) <= 1e-5, (step, losses)
        eager_losses.append(losses[0])
        for (name, p), q in zip(eager.named_parameters(), twin.parameters(), strict=True):
            assert q.grad is not None, f"step {step}: no gradient for {name} through the compiled graph"
            torch.testing.assert_close(q.grad, p.grad, rtol=0, atol=1e-5, msg=f"step {step}: grad of {name}")
        for optimizer in optimizers:
            optimizer.step()
    assert 0.5 < eager_losses[1] < eager_losses[0] < 5.0  # a cross-entropy over 23 classes (ln 23 = 3.1), lowered
