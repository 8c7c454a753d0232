"""Shared test fixtures, paths and script loading. Tests run on CPU with few threads: CI has 2 cores."""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))  # lets tests import reference.py and other helpers here

import hf_minimal  # registers the Auto classes

torch.set_num_threads(min(2, torch.get_num_threads()))

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
CONFIGS = ROOT / "configs"
BENCH = ROOT / "bench"


def load_script(path: Path):
    """A script (examples/..., bench/...) imported as a module, its folder on sys.path as when it runs: its
    neighbours import. Tests call its functions and `main(argv)` in this process."""
    if str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def tiny_config(**overrides) -> hf_minimal.MinimalTransformerConfig:
    """A small model that still has several heads and layers; dropout off so runs are deterministic."""
    values = dict(
        vocab_size=23,
        d_model=16,
        encoder_layers=2,
        decoder_layers=2,
        num_heads=4,
        d_ff=32,
        dropout=0.0,
        max_position_embeddings=16,
    )
    values.update(overrides)
    return hf_minimal.MinimalTransformerConfig(**values)


def save_tiny_g2p(folder: Path, tokenizer=None, seed: int = 0, **overrides) -> Path:
    """A random tiny model with a G2P tokenizer (CMUdict's unless given), saved as a model folder."""
    from hf_minimal import g2p

    tokenizer = tokenizer if tokenizer is not None else g2p.build_tokenizer()
    torch.manual_seed(seed)
    config = tiny_config(**{"vocab_size": len(tokenizer), "max_position_embeddings": 64, **overrides})
    hf_minimal.MinimalTransformerForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_model():
    torch.manual_seed(0)
    return hf_minimal.MinimalTransformerForConditionalGeneration(tiny_config()).eval()


# ---- Hub fixtures (tests/test_hub.py): a Hub-compatible server on 127.0.0.1 and the environment of its clients
HUB_TOKEN = "hf_dummy_token_for_the_local_test_hub"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """tests/hub_server.py serving from a thread on 127.0.0.1 (port 0), its data in a temp folder."""
    from hub_server import HubServer

    with HubServer(tmp_path_factory.mktemp("hub-data"), user="me", token=HUB_TOKEN) as server:
        yield server


@pytest.fixture(scope="module")
def hub_env(hub, tmp_path_factory):
    """`hub_env(name)` -> environment for a fresh client process: its own HF_HOME, HF_ENDPOINT at the test Hub,
    a dummy token, xet off (LFS files go through the Git LFS batch API and HTTP PUT) and one CPU thread."""

    def make(name: str) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
        env.pop("PYTHONPATH", None)
        env.update(
            HF_HOME=str(tmp_path_factory.mktemp(f"hf-home-{name}")),
            HF_ENDPOINT=hub.url,
            HF_TOKEN=HUB_TOKEN,
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            TOKENIZERS_PARALLELISM="false",
            OMP_NUM_THREADS="1",  # the same thread count in every process keeps float results bitwise identical
        )
        return env

    return make
