"""Share it: push to a Hub and load back with `trust_remote_code=True` where `hf_minimal` cannot be imported.

Everything goes over real HTTP to tests/hub_server.py on 127.0.0.1. Each step runs in a fresh subprocess with its
own HF_HOME (so a fresh `transformers_modules` cache), HF_ENDPOINT at the server, a dummy HF_TOKEN and
HF_HUB_DISABLE_XET=1; the steps are this file's `__main__` (`python tests/test_hub.py <step> ...`):
  push   model.push_to_hub + tokenizer.push_to_hub, then a second model push (a new commit)
  train  a short Seq2SeqTrainer(push_to_hub=True) run, checkpoint pushes included, then trainer.push_to_hub()
  load   with `import hf_minimal` blocked: the error cases first, then every load, and their outputs
Each step writes a JSON report; the tests compare the reports and what the server stored.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from limits import TIMEOUT

HERE = Path(__file__).resolve().parent
REPO, TRAINER_REPO, RESHARED_REPO = "me/g2p", "me/g2p-trainer", "me/g2p-reshared"
TOKENIZER_ONLY_REPO, NO_WEIGHTS_REPO = "me/tokenizer-only", "me/no-weights"  # for the error cases
SOURCES = ["c a t", "h e l l o", "q u i c k"]  # spelled words, padded to one batch
TARGET = "K AE T"  # teacher-forced decoder input for the logits comparison
TRAIN_PAIRS = [("c a t", "K AE T"), ("b a t", "B AE T"), ("h a t", "HH AE T"), ("l o t", "L AA T")]
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")
# What a Trainer output folder needs before training (docs/sharing.md): transformers' Trainer saves its arguments
# with torch.save (training_args.bin) into the folder it uploads, and the Hub skips files that `.gitignore` matches.
NO_PICKLES_GITIGNORE = "# Pickled files never go to the Hub.\n" + "".join(f"*{s}\n" for s in PICKLE_SUFFIXES)
EXPECTED_FILES = {
    ".gitattributes",  # the Hub's first commit
    "README.md",  # the model card
    "config.json",
    "configuration_minimal_transformer.py",
    "modeling_minimal_transformer.py",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
}
STEP_TIMEOUT_S = TIMEOUT


# ---------------------------------------------------------------- code shared by the steps (runs in subprocesses)
def build_tokenizer():
    """A small real tokenizer: WordLevel over letters and a few phones, specials <pad>=0 <s>=1 </s>=2 <unk>=3."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    phones = ["AA", "AE", "AH", "B", "EH", "HH", "IH", "K", "L", "OW", "T", "W"]
    vocab = {token: i for i, token in enumerate(specials + list("abcdefghijklmnopqrstuvwxyz'") + phones)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 2)])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def tiny_model(seed: int):
    """d_model 32, 2+2 layers; weight matrices drawn wide so that greedy and beam search give input-dependent
    tokens (a freshly initialised model repeats one token for every input, which would make comparisons weak)."""
    import torch

    from hf_minimal import MinimalTransformerConfig, MinimalTransformerForConditionalGeneration

    config = MinimalTransformerConfig(
        vocab_size=43, d_model=32, encoder_layers=2, decoder_layers=2, num_heads=4, d_ff=64, dropout=0.0
    )
    model = MinimalTransformerForConditionalGeneration(config).eval()
    torch.manual_seed(seed)  # after construction: the draws below do not depend on how many the init made
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.dim() == 2:  # LayerNorms stay at identity, biases at zero
                parameter.normal_(0.0, 0.5)
    return model


def seq2seq_outputs(model, tokenizer) -> dict:
    """Logits (teacher-forced, padded batch), greedy and beam-search tokens: what a loaded copy must reproduce."""
    import torch

    batch = tokenizer(SOURCES, return_tensors="pt", padding=True)
    labels = tokenizer([TARGET], return_tensors="pt").input_ids.repeat(len(SOURCES), 1)
    with torch.no_grad():
        logits = model(**batch, labels=labels).logits
    greedy = model.generate(**batch, max_new_tokens=8, do_sample=False, num_beams=1)
    beam = model.generate(**batch, max_new_tokens=8, do_sample=False, num_beams=3)
    return {"logits": logits.tolist(), "greedy": greedy.tolist(), "beam": beam.tolist()}


def base_outputs(model, tokenizer) -> dict:
    """The bare encoder-decoder's hidden states (what `AutoModel` returns)."""
    import torch

    batch = tokenizer(SOURCES, return_tensors="pt", padding=True)
    decoder_input_ids = tokenizer([TARGET], return_tensors="pt").input_ids.repeat(len(SOURCES), 1)
    with torch.no_grad():
        out = model(**batch, decoder_input_ids=decoder_input_ids)
    return {"decoder": out.last_hidden_state.tolist(), "encoder": out.encoder_last_hidden_state.tolist()}


def step_push(work_dir: str, report_path: str) -> None:
    from huggingface_hub import HfApi

    model, tokenizer = tiny_model(seed=0), build_tokenizer()
    report = {
        "model_commit": model.push_to_hub(REPO).oid,
        "tokenizer_commit": tokenizer.push_to_hub(REPO).oid,
        "first": seq2seq_outputs(model, tokenizer),
        "tokenizer_only_commit": tokenizer.push_to_hub(TOKENIZER_ONLY_REPO).oid,
    }
    model.save_pretrained(Path(work_dir) / "no-weights")  # as if a push had lost its weights
    HfApi().create_repo(NO_WEIGHTS_REPO)
    HfApi().upload_folder(
        repo_id=NO_WEIGHTS_REPO, folder_path=Path(work_dir) / "no-weights", allow_patterns="*.[jp][sy]*"
    )
    model = tiny_model(seed=2)  # new weights, same config and code; greedy differs per source (asserted)
    report["second_commit"] = model.push_to_hub(REPO, commit_message="Second version").oid
    report["second"] = seq2seq_outputs(model, tokenizer)
    report["second_base"] = base_outputs(model.model, tokenizer)
    report["tokens"] = tokenizer(SOURCES).input_ids
    source = Path(sys.modules[type(model).__module__].__file__).parent  # the files this process ran
    report["code_sha256"] = {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in source.glob("*_minimal_*.py")}
    Path(report_path).write_text(json.dumps(report))


def step_train(work_dir: str, report_path: str) -> None:
    from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainer, Seq2SeqTrainingArguments

    output_dir = Path(work_dir) / "trainer-output"
    output_dir.mkdir(parents=True)
    (output_dir / ".gitignore").write_text(NO_PICKLES_GITIGNORE)
    tokenizer, model = build_tokenizer(), tiny_model(seed=1)
    features = [tokenizer(source, text_target=target) for source, target in TRAIN_PAIRS * 4]
    args = Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        push_to_hub=True,
        hub_model_id=TRAINER_REPO,
        max_steps=6,
        save_steps=3,  # checkpoint pushes (Trainer._push_from_checkpoint) run too
        per_device_train_batch_size=4,
        learning_rate=1e-3,
        report_to="none",
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = Seq2SeqTrainer(
        model=model,
        args=args,
        train_dataset=features,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model),
        processing_class=tokenizer,
    )
    trainer.train()
    commit = trainer.push_to_hub()
    model.eval()
    report = {"commit": commit.oid, "outputs": seq2seq_outputs(model, tokenizer), "local_files": os.listdir(output_dir)}
    Path(report_path).write_text(json.dumps(report))


def _error(call) -> dict:
    """Run `call`, which should fail; describe the exception chain and where it was raised (the test judges)."""
    import traceback

    try:
        call()
    except Exception as error:  # any type: the report names it
        chain, cause = [], error
        while cause is not None:
            chain.append(type(cause).__module__ + "." + type(cause).__name__)
            cause = cause.__cause__ or cause.__context__
        frames = [frame.filename for frame in traceback.extract_tb(error.__traceback__)]
        return {"type": chain[0], "chain": chain, "message": str(error), "frames": frames}
    return {"type": "no error", "chain": [], "message": "", "frames": []}


def step_load(push_report_path: str, train_report_path: str, report_path: str) -> None:
    class BlockHfMinimal:
        """First on sys.meta_path: `import hf_minimal` fails, as on a machine where it is not installed."""

        def find_spec(self, name, path=None, target=None):
            if name == "hf_minimal" or name.startswith("hf_minimal."):
                raise ImportError(f"{name} is blocked in this process (as if not installed)")

    sys.meta_path.insert(0, BlockHfMinimal())
    from huggingface_hub import hf_hub_download
    from transformers import AutoModel, AutoModelForSeq2SeqLM, AutoTokenizer

    pushed = json.loads(Path(push_report_path).read_text())
    trained = json.loads(Path(train_report_path).read_text())
    report: dict = {"errors": {}}
    errors = report["errors"]
    # Errors first, while nothing has been loaded in this process. stdin is /dev/null, so transformers' y/N
    # prompt for remote code gets no answer and fails as in a script.
    errors["no_trust"] = _error(lambda: AutoModelForSeq2SeqLM.from_pretrained(REPO))
    errors["trust_false"] = _error(lambda: AutoModel.from_pretrained(REPO, trust_remote_code=False))
    errors["missing_repo"] = _error(lambda: AutoModelForSeq2SeqLM.from_pretrained("me/nope", trust_remote_code=True))
    errors["missing_repo_tokenizer"] = _error(lambda: AutoTokenizer.from_pretrained("me/nope"))
    errors["missing_file"] = _error(lambda: hf_hub_download(REPO, "missing.json"))
    errors["missing_config"] = _error(
        lambda: AutoModelForSeq2SeqLM.from_pretrained(TOKENIZER_ONLY_REPO, trust_remote_code=True)
    )
    errors["missing_weights"] = _error(
        lambda: AutoModelForSeq2SeqLM.from_pretrained(NO_WEIGHTS_REPO, trust_remote_code=True, use_safetensors=True)
    )
    errors["missing_revision"] = _error(
        lambda: AutoModelForSeq2SeqLM.from_pretrained(REPO, revision="0" * 40, trust_remote_code=True)
    )
    try:
        import hf_minimal  # noqa: F401
    except ImportError:
        report["import_blocked"] = True

    tokenizer = AutoTokenizer.from_pretrained(REPO)
    report["tokenizer"] = {"tokens": tokenizer(SOURCES).input_ids, "class": type(tokenizer).__name__}
    report["tokenizer_trust_false"] = AutoTokenizer.from_pretrained(REPO, trust_remote_code=False)(SOURCES).input_ids
    model = AutoModelForSeq2SeqLM.from_pretrained(REPO, trust_remote_code=True).eval()
    report["module"] = type(model).__module__
    report["second"] = seq2seq_outputs(model, tokenizer)
    first = AutoModelForSeq2SeqLM.from_pretrained(REPO, revision=pushed["model_commit"], trust_remote_code=True)
    report["first"] = seq2seq_outputs(first.eval(), tokenizer)
    report["first_module"] = type(first).__module__  # the code comes from the pinned commit too
    base = AutoModel.from_pretrained(REPO, trust_remote_code=True).eval()
    report["base_class"] = type(base).__module__ + "." + type(base).__name__
    report["second_base"] = base_outputs(base, tokenizer)
    pinned = {"revision": trained["commit"]}  # the commit trainer.push_to_hub() returned
    trained_model = AutoModelForSeq2SeqLM.from_pretrained(TRAINER_REPO, trust_remote_code=True, **pinned).eval()
    report["trained"] = seq2seq_outputs(trained_model, AutoTokenizer.from_pretrained(TRAINER_REPO, **pinned))
    # Someone without the package fine-tunes the downloaded model and shares it again.
    report["reshared_commit"] = model.push_to_hub(RESHARED_REPO).oid
    report["hf_minimal_modules"] = [m for m in sys.modules if m == "hf_minimal" or m.startswith("hf_minimal.")]
    Path(report_path).write_text(json.dumps(report))


# ---------------------------------------------------------------- the pytest side
def run_steps(work: Path, env: dict, *steps: tuple[str, ...]) -> None:
    """Run `python tests/test_hub.py <step> ...` for each step at once, each in a fresh process; fail with its log."""
    running = []
    for args in steps:
        log = (work / f"{args[0]}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            env=env[args[0]],
            cwd=env[args[0]]["HF_HOME"],  # not the repo root, from where `hf_minimal` would be importable
            stdin=subprocess.DEVNULL,  # as in a script: transformers' y/N prompt for remote code gets no answer
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        running.append((args[0], process, log, time.perf_counter()))
    failures = []
    for name, process, log, started in running:
        try:
            returncode = process.wait(timeout=max(1.0, STEP_TIMEOUT_S - (time.perf_counter() - started)))
        except subprocess.TimeoutExpired:
            returncode = f"killed after {STEP_TIMEOUT_S} s"
        process.kill()
        log.close()
        print(f"step {name}: {time.perf_counter() - started:.1f} s")
        if returncode != 0:
            failures.append(f"step {name} failed ({returncode}):\n{(work / f'{name}.log').read_text()[-8000:]}")
    assert not failures, "\n\n".join(failures)


@pytest.fixture(scope="module")
def reports(hub, hub_env, tmp_path_factory) -> dict:
    """Run the push and train steps (in parallel: different repos), then the load step; return their reports."""
    work = tmp_path_factory.mktemp("hub-steps")
    env = {name: hub_env(name) for name in ("push", "train", "load")}
    for name in ("push", "train"):  # these import hf_minimal, installed or not; the load step must not
        env[name]["PYTHONPATH"] = str(HERE.parent)
    run_steps(
        work,
        env,
        ("push", str(work / "push-work"), str(work / "push.json")),
        ("train", str(work / "train-work"), str(work / "train.json")),
    )
    run_steps(work, env, ("load", str(work / "push.json"), str(work / "train.json"), str(work / "load.json")))
    return {name: json.loads((work / f"{name}.json").read_text()) for name in ("push", "train", "load")}


def test_push_uploads_exactly_the_model_files(hub, reports):
    assert hub.server_errors == []  # every request of every step was understood
    commit = reports["push"]["tokenizer_commit"]
    assert hub.file_list(REPO, commit) == EXPECTED_FILES
    code = reports["push"]["code_sha256"]  # the package's own source, as the pushing process read it
    assert set(code) == {"configuration_minimal_transformer.py", "modeling_minimal_transformer.py"}
    for name, digest in code.items():
        assert hashlib.sha256(hub.read(REPO, name, commit)).hexdigest() == digest
    config = json.loads(hub.read(REPO, "config.json", commit))
    assert config["auto_map"] == {
        "AutoConfig": "configuration_minimal_transformer.MinimalTransformerConfig",
        "AutoModel": "modeling_minimal_transformer.MinimalTransformerModel",
        "AutoModelForSeq2SeqLM": "modeling_minimal_transformer.MinimalTransformerForConditionalGeneration",
    }
    assert config["model_type"] == "minimal_transformer"
    weights = hub.read(REPO, "model.safetensors", commit)
    header = json.loads(weights[8 : 8 + int.from_bytes(weights[:8], "little")])
    assert "lm_head.weight" in header or "model.shared.weight" in header  # a real safetensors header
    assert hub.store.files("me", "g2p", commit)["model.safetensors"]["lfs"]  # went through Git LFS, as on the Hub
    card = hub.read(REPO, "README.md", commit).decode()
    assert card.startswith("---\n") and "library_name: transformers" in card


def test_loads_without_package_and_reproduces_outputs(reports):
    pushed, loaded = reports["push"], reports["load"]
    assert loaded["import_blocked"] and loaded["hf_minimal_modules"] == []
    assert loaded["module"].startswith("transformers_modules.") and loaded["module"].endswith(
        ".modeling_minimal_transformer"
    )
    assert loaded["tokenizer"]["tokens"] == pushed["tokens"] == loaded["tokenizer_trust_false"]
    assert loaded["second"] == pushed["second"]  # identical logits, greedy and beam tokens
    greedy = pushed["second"]["greedy"]
    assert len({tuple(row) for row in greedy}) == len(SOURCES) and len({t for row in greedy for t in row}) > 3
    assert loaded["base_class"].endswith("modeling_minimal_transformer.MinimalTransformerModel")
    assert loaded["second_base"] == pushed["second_base"]


def test_model_loaded_as_remote_code_can_be_shared_again(hub, reports):
    """`trust_remote_code` registers the downloaded classes, so their push carries auto_map and the code too."""
    commit = reports["load"]["reshared_commit"]
    assert hub.file_list(RESHARED_REPO, commit) == EXPECTED_FILES - {"tokenizer.json", "tokenizer_config.json"}
    for name in ("config.json", "configuration_minimal_transformer.py", "modeling_minimal_transformer.py"):
        original, reshared = hub.read(REPO, name), hub.read(RESHARED_REPO, name, commit)
        if name == "config.json":
            original, reshared = json.loads(original)["auto_map"], json.loads(reshared)["auto_map"]
        assert reshared == original, name
    assert hub.read(RESHARED_REPO, "model.safetensors", commit) == hub.read(REPO, "model.safetensors")


def test_trainer_push_to_hub_uploads_no_pickles_and_loads(hub, reports):
    trained = reports["train"]
    assert "training_args.bin" in trained["local_files"]  # the Trainer did write it ...
    assert hub.file_list(TRAINER_REPO) == EXPECTED_FILES | {".gitignore"}  # ... and the Hub skipped it
    commits = [entry for entry in hub.requests if entry[0] == "POST" and "/g2p-trainer/commit/" in entry[1]]
    assert len(commits) >= 2  # at least one checkpoint push during training, then trainer.push_to_hub()
    assert hub.branch_head(TRAINER_REPO) == trained["commit"]
    assert reports["load"]["trained"] == trained["outputs"]


def test_second_push_is_a_new_commit_and_old_revision_loads(hub, reports):
    pushed, loaded = reports["push"], reports["load"]
    first, second = pushed["model_commit"], pushed["second_commit"]
    assert len({first, pushed["tokenizer_commit"], second}) == 3
    assert all(len(c) == 40 and int(c, 16) >= 0 for c in (first, second))
    assert hub.branch_head(REPO) == second
    assert hub.read(REPO, "model.safetensors", first) != hub.read(REPO, "model.safetensors", second)
    assert hub.file_list(REPO, second) == EXPECTED_FILES
    assert loaded["first"] == pushed["first"] != pushed["second"]  # revision=<first commit> gives the old weights
    assert f".{first}." in loaded["first_module"]  # ... and the code of that commit


def test_error_cases_are_the_clear_ones(reports):
    errors = reports["load"]["errors"]
    for case in ("no_trust", "trust_false"):  # transformers stops before any of our code is even downloaded
        assert errors[case]["type"] == "builtins.ValueError"
        assert "contains custom code" in errors[case]["message"]
        assert "trust_remote_code=True" in errors[case]["message"]
        assert not any("minimal_transformer" in frame for frame in errors[case]["frames"]), errors[case]
    for error in errors.values():  # raised by transformers or the Hub client, never a crash inside our code
        assert "minimal_transformer" not in error["frames"][-1], error
    for case in ("missing_repo", "missing_repo_tokenizer"):
        assert "huggingface_hub.errors.RepositoryNotFoundError" in errors[case]["chain"]
        assert "me/nope" in errors[case]["message"]
    assert errors["missing_file"]["type"] == "huggingface_hub.errors.RemoteEntryNotFoundError"
    assert errors["missing_config"]["type"] == "builtins.ValueError"  # transformers' words for no config.json:
    assert "Unrecognized model in me/tokenizer-only" in errors["missing_config"]["message"]
    assert errors["missing_weights"]["type"] == "builtins.OSError"
    assert "does not appear to have a file named model.safetensors" in errors["missing_weights"]["message"]
    assert "huggingface_hub.errors.RevisionNotFoundError" in errors["missing_revision"]["chain"]


def test_nothing_pickled_is_uploaded_or_requested(hub, reports):
    assert hub.file_list(NO_WEIGHTS_REPO) == EXPECTED_FILES - {
        "model.safetensors",
        "README.md",
        "tokenizer.json",
        "tokenizer_config.json",
    }
    for repo in (REPO, TRAINER_REPO, TOKENIZER_ONLY_REPO, NO_WEIGHTS_REPO, RESHARED_REPO):
        assert not [p for p in hub.file_list(repo) if p.endswith(PICKLE_SUFFIXES)]
    requested = [path for _, path, _ in hub.requests if path.split("?")[0].endswith(PICKLE_SUFFIXES)]
    assert requested == []


# ---------------------------------------------------------------- the server itself (in-process, no torch)
def _request(url: str, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.request(method, path, body=body, headers=headers or {})
    response = connection.getresponse()
    content = response.read()
    connection.close()
    return response.status, dict(response.headers), content


def test_server_binds_to_loopback_only(tmp_path):
    from hub_server import HubServer

    with pytest.raises(ValueError, match="loopback"):
        HubServer(tmp_path, host="0.0.0.0")
    with HubServer(tmp_path) as hub:
        assert hub.url.startswith("http://127.0.0.1:")
        status, _, body = _request(hub.url, "GET", "/api/whoami-v2", headers={"Authorization": "Bearer x"})
        assert status == 200 and json.loads(body)["name"] == "me"


def test_server_refuses_paths_outside_its_data_folder(tmp_path):
    from hub_server import HubServer

    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    (tmp_path / "data").mkdir()
    auth = {"Authorization": "Bearer x", "Content-Type": "application/json"}
    with HubServer(tmp_path / "data") as hub:
        status, _, _ = _request(hub.url, "POST", "/api/repos/create", json.dumps({"name": "r"}).encode(), auth)
        assert status == 200
        before = sorted(p for p in tmp_path.rglob("*") if "data" not in p.relative_to(tmp_path).parts[:1])
        for path in (
            "/../secret.txt",
            "/%2e%2e/%2e%2e/secret.txt",
            "/me/r/resolve/main/..%2F..%2F..%2F..%2Fsecret.txt",
            "/me/r/resolve/main/../../../../secret.txt",
            "/api/models/..%2F..%2F../secret.txt",
            "/api/models/me/r/tree/main/..%2F..",
        ):
            status, _, body = _request(hub.url, "GET", path)
            assert status == 400 and b"do not serve" not in body, path
        escape = json.dumps(
            {"key": "file", "value": {"path": "../../escape.txt", "content": "eA==", "encoding": "base64"}}
        )
        commit = json.dumps({"key": "header", "value": {"summary": "x"}}) + "\n" + escape + "\n"
        status, _, _ = _request(hub.url, "POST", "/api/models/me/r/commit/main", commit.encode(), auth)
        assert status == 400
        status, _, _ = _request(
            hub.url, "POST", "/api/repos/create", json.dumps({"name": "..", "organization": ".."}).encode(), auth
        )
        assert status == 400
        data = b"x"
        status, _, _ = _request(hub.url, "PUT", "/lfs-upload/..%2F..%2Fsecret.txt", data)
        assert status == 400
        after = sorted(p for p in tmp_path.rglob("*") if "data" not in p.relative_to(tmp_path).parts[:1])
        assert after == before and secret.read_text() == "do not serve"
        assert hub.server_errors == []  # refused as bad requests, not by accident
        assert hub.file_list("me/r") == {".gitattributes"}


def test_server_speaks_the_hub_protocol(tmp_path, monkeypatch):
    """What the client relies on, through huggingface_hub's own HfApi: 409 with url, regular and LFS commits,
    40-hex commit ids, old revisions, tree and model info, .gitignore, error codes, tokens."""
    import huggingface_hub
    from hub_server import HubServer
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)  # this process imported it already
    with HubServer(tmp_path / "data", token="hf_test") as hub:
        api = HfApi(endpoint=hub.url, token="hf_test")
        url = api.create_repo("me/p")
        assert url.repo_id == "me/p" and api.create_repo("me/p", exist_ok=True).repo_id == "me/p"
        with pytest.raises(HfHubHTTPError) as conflict:
            api.create_repo("me/p")
        assert conflict.value.response.status_code == 409
        with pytest.raises(HfHubHTTPError) as unauthorized:
            HfApi(endpoint=hub.url, token="wrong").create_repo("me/q")
        assert unauthorized.value.response.status_code == 401

        folder = tmp_path / "folder"
        (folder / "sub").mkdir(parents=True)
        (folder / "notes.txt").write_text("v1")
        (folder / "sub" / "weights.safetensors").write_bytes(bytes(range(256)) * 64)
        (folder / "state.bin").write_bytes(b"\x80\x04pickle")
        (folder / ".gitignore").write_text("*.bin\n")
        first = api.upload_folder(repo_id="me/p", folder_path=folder).oid
        (folder / "notes.txt").write_text("v2")
        second = api.upload_file(repo_id="me/p", path_or_fileobj=folder / "notes.txt", path_in_repo="notes.txt").oid
        assert first != second and len(first) == len(second) == 40
        assert hub.file_list("me/p") == {".gitattributes", ".gitignore", "notes.txt", "sub/weights.safetensors"}
        assert hub.store.files("me", "p")["sub/weights.safetensors"]["lfs"]
        assert not hub.store.files("me", "p")["notes.txt"]["lfs"]
        assert [c.commit_id for c in api.list_repo_commits("me/p")][:2] == [second, first]

        cache = tmp_path / "cache"
        old = hf_hub_download("me/p", "notes.txt", revision=first, cache_dir=cache, endpoint=hub.url)
        new = hf_hub_download("me/p", "notes.txt", cache_dir=cache, endpoint=hub.url)
        assert (Path(old).read_text(), Path(new).read_text()) == ("v1", "v2")
        weights = hf_hub_download("me/p", "sub/weights.safetensors", cache_dir=cache, endpoint=hub.url)
        assert Path(weights).read_bytes() == (folder / "sub" / "weights.safetensors").read_bytes()

        info = api.model_info("me/p")
        assert info.sha == second and {s.rfilename for s in info.siblings} == hub.file_list("me/p")
        tree = {f.path: f for f in api.list_repo_tree("me/p", recursive=True)}
        assert tree["notes.txt"].blob_id == hashlib.sha1(b"blob 2\0v2").hexdigest()  # git's blob id
        digest = hashlib.sha256((folder / "sub" / "weights.safetensors").read_bytes()).hexdigest()
        assert tree["sub/weights.safetensors"].lfs.sha256 == digest and "sub" in tree

        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("me/none", "x", cache_dir=cache, endpoint=hub.url)
        with pytest.raises(RevisionNotFoundError):
            hf_hub_download("me/p", "notes.txt", revision="f" * 40, cache_dir=cache, endpoint=hub.url)
        with pytest.raises(EntryNotFoundError):
            hf_hub_download("me/p", "state.bin", cache_dir=cache, endpoint=hub.url)

        # A stale parent is refused, and an LFS pointer to bytes that were never uploaded is refused.
        header = {"key": "header", "value": {"summary": "x", "parentCommit": first}}
        auth = {"Authorization": "Bearer hf_test"}
        status, _, _ = _request(hub.url, "POST", "/api/models/me/p/commit/main", json.dumps(header).encode(), auth)
        assert status == 412
        ghost = {"key": "lfsFile", "value": {"path": "g.safetensors", "algo": "sha256", "oid": "a" * 64, "size": 1}}
        body = (json.dumps({"key": "header", "value": {"summary": "x"}}) + "\n" + json.dumps(ghost)).encode()
        status, _, _ = _request(hub.url, "POST", "/api/models/me/p/commit/main", body, auth)
        assert status == 422
        content = base64.b64encode(b"data").decode()
        status, _, _ = _request(hub.url, "PUT", f"/lfs-upload/{'b' * 64}", content.encode())
        assert status == 400  # bytes that do not hash to the oid in the URL
        for path, malformed in (
            ("/api/models/me/p/commit/main", b"not json"),
            ("/api/models/me/p/preupload/main", b'{"files": [{"sample": ""}]}'),
            ("/me/p.git/info/lfs/objects/batch", b'{"operation": "upload", "objects": [{"oid": "../x", "size": 1}]}'),
        ):
            assert _request(hub.url, "POST", path, malformed, auth)[0] == 400, path
        assert hub.branch_head("me/p") == second and hub.server_errors == []


if __name__ == "__main__":
    steps = {"push": step_push, "train": step_train, "load": step_load}
    steps[sys.argv[1]](*sys.argv[2:])


def test_train_g2p_push_to_hub_publishes_the_card_and_results_and_no_pickles(hub, hub_env, tmp_path):
    """`examples/g2p/train_g2p.py --push_to_hub`: the model, tokenizer, our card and results.json, nothing pickled."""
    tiny = ["--d_model", "32", "--d_ff", "64", "--num_heads", "2", "--encoder_layers", "1", "--decoder_layers", "1"]
    small = ["--max_train_samples", "64", "--max_eval_samples", "16", "--max_test_samples", "16", "--max_steps", "10"]
    steps = ["--eval_steps", "5", "--save_steps", "5", "--test_num_beams", "1", "--disable_tqdm", "true"]
    hub_flags = ["--push_to_hub", "true", "--hub_model_id", "me/g2p-script", "--output_dir", str(tmp_path / "out")]
    from conftest import EXAMPLES  # here, not at the top: the steps' processes import this file without hf_minimal

    command = [sys.executable, str(EXAMPLES / "g2p" / "train_g2p.py"), *tiny, *small, *steps, *hub_flags]
    result = subprocess.run(
        command, cwd=tmp_path, env=hub_env("script"), capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0, result.stderr[-4000:]
    files = hub.file_list("me/g2p-script")
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md", "results.json"} <= files
    assert {"configuration_minimal_transformer.py", "modeling_minimal_transformer.py"} <= files
    assert not [p for p in files if p.endswith(PICKLE_SUFFIXES)]
    card = hub.read("me/g2p-script", "README.md").decode()
    assert "CMUdict grapheme-to-phoneme" in card and "SHA-256" in card  # our card, not Trainer's generic one
    assert json.loads(hub.read("me/g2p-script", "results.json"))["train"]["global_step"] == 10
    assert hub.server_errors == []
