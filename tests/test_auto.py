"""Auto classes, configs, save/load with safetensors, and remote code in a process that cannot import hf_minimal."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from conftest import CONFIGS, tiny_config
from huggingface_hub.errors import StrictDataclassClassValidationError
from limits import TIMEOUT
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

import hf_minimal
from hf_minimal import MinimalTransformerConfig, MinimalTransformerForConditionalGeneration, MinimalTransformerModel

# Put first on sys.meta_path, this makes `import hf_minimal` fail, as on a machine without the package.
BLOCK_HF_MINIMAL = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name == "hf_minimal" or name.startswith("hf_minimal."):
            raise ImportError("hf_minimal is blocked in this process")
sys.meta_path.insert(0, _Block())
"""


def test_import_registers_auto_classes_and_is_idempotent():
    import importlib

    importlib.reload(hf_minimal)  # a second registration must not raise
    cfg = AutoConfig.for_model("minimal_transformer", vocab_size=30, d_model=16, num_heads=2, d_ff=32)
    assert isinstance(cfg, MinimalTransformerConfig)
    assert type(AutoModel.from_config(cfg)).__name__ == "MinimalTransformerModel"
    assert type(AutoModelForSeq2SeqLM.from_config(cfg)).__name__ == "MinimalTransformerForConditionalGeneration"
    assert set(hf_minimal.__all__) >= {"MinimalTransformerConfig", "scaled_dot_product_attention"}


# Ways a process may first meet the package, then transformers; each must end with the model registered.
FIRST_IMPORTS = [
    "import hf_minimal",
    "import transformers; import hf_minimal",
    "from hf_minimal import MinimalTransformerConfig",
    "import hf_minimal.configuration_minimal_transformer",
    "import hf_minimal.modeling_minimal_transformer",
    "from hf_minimal.g2p import build_tokenizer",
]


@pytest.mark.parametrize("first", FIRST_IMPORTS)
def test_import_is_light_and_the_auto_classes_know_the_model_whatever_is_imported_first(first):
    """`import hf_minimal` loads neither torch nor transformers (the G2P command and the CTranslate2 engine start
    without them), and the Auto classes resolve the model as soon as transformers is there, in a fresh process."""
    script = textwrap.dedent(f"""
        import sys
        import hf_minimal
        light = not {{"torch", "transformers"}} & set(sys.modules)
        {first}
        from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM
        config = AutoConfig.for_model("minimal_transformer", d_model=16, num_heads=2, d_ff=32, encoder_layers=1,
                                      decoder_layers=1, vocab_size=20)
        model = AutoModelForSeq2SeqLM.from_config(config)
        assert type(model) is hf_minimal.MinimalTransformerForConditionalGeneration, type(model)
        assert type(AutoModel.from_config(config)) is hf_minimal.MinimalTransformerModel
        import json, tempfile  # the classes are marked for auto_map: a saved config names them
        with tempfile.TemporaryDirectory() as folder:
            config.save_pretrained(folder)
            auto_map = json.load(open(folder + "/config.json"))["auto_map"]
        assert auto_map["AutoConfig"].endswith(".MinimalTransformerConfig"), auto_map
        print("light" if light else "heavy")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["light"], result.stdout


@pytest.mark.parametrize(("name", "params_m", "d_model", "dropout"), [("base", 65, 512, 0.1), ("big", 213, 1024, 0.3)])
def test_paper_configs_load_and_match_table3(name, params_m, d_model, dropout):
    cfg = AutoConfig.from_pretrained(CONFIGS / "models" / f"transformer-{name}.json")
    assert (cfg.d_model, cfg.dropout, cfg.encoder_layers, cfg.hidden_size) == (d_model, dropout, 6, d_model)
    with torch.device("meta"):
        model = AutoModelForSeq2SeqLM.from_config(cfg)
    count = sum(p.numel() for p in model.parameters()) / 1e6
    assert abs(count - params_m) / params_m < 0.05  # Table 3 rounds, and its vocabulary size is approximate


def test_config_defaults_are_the_paper_base_model():
    cfg = MinimalTransformerConfig()
    assert (cfg.d_model, cfg.encoder_layers, cfg.decoder_layers, cfg.num_heads, cfg.d_ff) == (512, 6, 6, 8, 2048)
    assert (cfg.dropout, cfg.activation, cfg.norm_first, cfg.scale_embedding, cfg.tie_word_embeddings) == (
        0.1,
        "relu",
        False,
        True,
        True,
    )
    assert cfg.is_encoder_decoder and cfg.init_std == 512**-0.5
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.num_hidden_layers) == (512, 8, 6)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"d_model": 30, "num_heads": 4}, "d_model"),
        ({"d_model": 10, "num_heads": 4}, "d_model"),
        ({"d_model": 9, "num_heads": 3}, "d_model"),
        ({"d_model": 0}, "d_model"),
        ({"num_heads": -1}, "num_heads"),
        ({"encoder_layers": 0}, "encoder_layers"),
        ({"d_ff": 0}, "d_ff"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"dropout": 1.0}, "dropout"),
        ({"attention_dropout": -0.1}, "attention_dropout"),
        ({"activation": "tanhh"}, "activation"),
        ({"pad_token_id": 50, "vocab_size": 40}, "pad_token_id"),
        ({"eos_token_id": -1}, "eos_token_id"),
        ({"max_position_embeddings": 0}, "max_position_embeddings"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
    ],
)
def test_invalid_config_values_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(StrictDataclassClassValidationError, match=rf"{field}=.* must be"):
        MinimalTransformerConfig(**kwargs)


def test_odd_d_model_is_rejected_even_when_divisible():
    with pytest.raises(StrictDataclassClassValidationError, match="even"):
        MinimalTransformerConfig(d_model=9, num_heads=3)


def test_save_and_load_roundtrip_is_bit_identical(tmp_path):
    torch.manual_seed(0)
    model = MinimalTransformerForConditionalGeneration(tiny_config(dropout=0.1)).eval()
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert files == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "configuration_minimal_transformer.py",
        "modeling_minimal_transformer.py",
    }
    saved = load_file(tmp_path / "model.safetensors")
    assert "lm_head.weight" not in saved or "model.shared.weight" not in saved  # one copy of the tied matrix
    assert not any("embed_positions" in key for key in saved)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "configuration_minimal_transformer.MinimalTransformerConfig",
        "AutoModel": "modeling_minimal_transformer.MinimalTransformerModel",
        "AutoModelForSeq2SeqLM": "modeling_minimal_transformer.MinimalTransformerForConditionalGeneration",
    }
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, MinimalTransformerForConditionalGeneration)
    before, after = model.state_dict(), loaded.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert loaded.lm_head.weight is loaded.model.shared.weight is loaded.model.encoder.embed_tokens.weight
    assert torch.equal(loaded.model.decoder.embed_positions.pe, model.model.decoder.embed_positions.pe)
    src = torch.tensor([[5, 6, 7, 2]])
    assert torch.equal(loaded(src, labels=src).logits, model(src, labels=src).logits)
    base = AutoModel.from_pretrained(tmp_path)  # the base model from the LM checkpoint
    assert isinstance(base, MinimalTransformerModel)
    assert torch.equal(base.shared.weight, model.model.shared.weight)


def test_untied_lm_head_survives_save_and_load(tmp_path):
    model = MinimalTransformerForConditionalGeneration(tiny_config(tie_word_embeddings=False))
    with torch.no_grad():
        model.lm_head.weight.add_(1.0)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert loaded.lm_head.weight is not loaded.model.shared.weight
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_remote_code_loads_without_the_package(tmp_path):
    torch.manual_seed(1)
    model = MinimalTransformerForConditionalGeneration(tiny_config()).eval()
    model.save_pretrained(tmp_path / "model")
    src = torch.tensor([[5, 6, 7, 8, 2], [9, 10, 2, 0, 0]])
    mask = (src != 0).long()
    torch.save({"src": src, "mask": mask}, tmp_path / "inputs.pt")
    script = BLOCK_HF_MINIMAL + textwrap.dedent(f"""
        import torch
        from transformers import AutoModel, AutoModelForSeq2SeqLM
        try:
            import hf_minimal
            raise SystemExit("hf_minimal should not be importable here")
        except ImportError:
            pass
        inputs = torch.load({str(tmp_path / "inputs.pt")!r})
        model = AutoModelForSeq2SeqLM.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True).eval()
        base = AutoModel.from_pretrained({str(tmp_path / "model")!r}, trust_remote_code=True)
        assert type(base).__name__ == "MinimalTransformerModel", type(base)
        assert "hf_minimal" not in type(model).__module__, type(model).__module__
        logits = model(input_ids=inputs["src"], attention_mask=inputs["mask"], labels=inputs["src"]).logits
        tokens = model.generate(inputs["src"], attention_mask=inputs["mask"], max_new_tokens=6, num_beams=2)
        torch.save({{"logits": logits, "tokens": tokens}}, {str(tmp_path / "out.pt")!r})
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    out = torch.load(tmp_path / "out.pt")
    # Same weights and code in two processes need not give the same bits: the matrix-product kernels split their
    # sums by the threads they get. float32's tolerance still sees a wrong position table, scale or norm (O(0.1)).
    torch.testing.assert_close(out["logits"], model(input_ids=src, attention_mask=mask, labels=src).logits)
    assert torch.equal(out["tokens"], model.generate(src, attention_mask=mask, max_new_tokens=6, num_beams=2))


def test_from_pretrained_does_not_reinitialise_loaded_weights(tmp_path):
    model = MinimalTransformerForConditionalGeneration(tiny_config())
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.125)  # a value no init scheme produces
    model.save_pretrained(tmp_path)
    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path)
    assert all(torch.all(p == 0.125) for p in loaded.parameters())
