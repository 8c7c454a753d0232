"""Shared test fixtures. Tests run on CPU with few threads: CI has 2 cores."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # lets tests import reference.py and other helpers here

import hf_minimal  # registers the Auto classes

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_config(**overrides) -> hf_minimal.MinimalTransformerConfig:
    """A small model that still has several heads and layers; dropout off so runs are deterministic."""
    values = dict(
        vocab_size=23, d_model=16, encoder_layers=2, decoder_layers=2, num_heads=4, d_ff=32,
        dropout=0.0, max_position_embeddings=16,
    )
    values.update(overrides)
    return hf_minimal.MinimalTransformerConfig(**values)


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return hf_minimal.MinimalTransformerForConditionalGeneration(tiny_config()).eval()
