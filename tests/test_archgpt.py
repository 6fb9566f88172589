"""The architecture GPT on a synthetic motif corpus: windows, split, training, classifier, predictor."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from lmnas.archgpt import (
    ArchGPTConfig,
    ArchGPTPredictor,
    ClassifierConfig,
    build_model,
    evaluate,
    load_block_classifier,
    load_vocab,
    make_windows,
    read_corpus,
    split_by_group,
    train_archgpt,
)
from lmnas.archgpt.classifier import block_examples
from lmnas.archgpt.windows import IGNORE
from lmnas.encoding.vocab import Vocab
from lmnas.errors import LmnasError

SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]
STEM = ["conv3x3_s2_3_32", "bn_32", "relu"]
HEAD = ["avgpool", "linear_10"]
# Blocks share layers (bn_64, relu, conv3x3_64) so the block class of a layer needs its context.
MOTIFS = {
    "BasicBlock": ["conv3x3_64", "bn_64", "relu", "conv3x3_64", "bn_64", "add", "relu"],
    "Bottleneck": [
        "conv1x1_64", "bn_64", "relu", "conv3x3_64", "bn_64", "relu", "conv1x1_256", "bn_256", "add", "relu"
    ],
    "InvertedResidual": ["conv1x1_96", "bn_96", "relu6", "dwconv3x3_96", "bn_96", "relu6", "conv1x1_24", "bn_24"],
}
TINY = ArchGPTConfig(n_layer=2, n_head=2, n_embd=32, window=6, dropout=0.0)
TRAIN_KW = dict(cfg=TINY, batch_size=32, lr=3e-3, seed=0, device="cpu", val_fraction=0.2, progress=False)


def synthetic_rows(n: int, seed: int, prefix: str) -> dict[str, list]:
    """n architectures: stem, 2-5 random motif blocks, head; block labels per layer."""
    rng = random.Random(seed)
    rows: dict[str, list] = {"arch_id": [], "structures": [], "blocks": []}
    for i in range(n):
        names = [rng.choice(sorted(MOTIFS)) for _ in range(rng.randint(2, 5))]
        structures = STEM + [t for b in names for t in MOTIFS[b]] + HEAD
        blocks = [""] * len(STEM) + [b for b in names for _ in MOTIFS[b]] + [""] * len(HEAD)
        rows["arch_id"].append(f"{prefix}-{i}")
        rows["structures"].append(structures)
        rows["blocks"].append(blocks)
    return rows


def write_corpus(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    counts: Counter[str] = Counter()
    for name, n, seed in (("pretrain", 80, 1), ("finetune", 40, 2)):
        rows = synthetic_rows(n, seed, name)
        counts.update(t for s in rows["structures"] for t in s)
        pq.write_table(pa.table(rows), folder / f"{name}.parquet")
    structures = sorted(counts)
    (folder / "vocab.json").write_text(json.dumps({"specials": SPECIALS, "structures": structures, "counts": counts}))
    return folder


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # These models are tiny: a second intra-op thread only adds sync cost, and on a shared
    # 2-core machine it makes steps ~15x slower. Restored after the module.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def trained(one_thread: None, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    root = tmp_path_factory.mktemp("archgpt")
    corpus = write_corpus(root / "corpus")
    out = root / "archgpt"
    metrics = train_archgpt(corpus, out, pretrain_epochs=12, finetune_epochs=6, **TRAIN_KW)
    return corpus, out, metrics


def test_windows_shapes_and_label_masking() -> None:
    vocab = Vocab(tuple(f"t{i}" for i in range(20)))
    seqs = [list(range(4, 13)), [4, 5]]  # 9 and 2 layers
    train = make_windows(seqs, vocab, window=4, stride=2)
    assert train.input_ids.shape[1] == train.labels.shape[1] == 5
    pads = train.input_ids == vocab.pad_id
    assert pads.any() and (train.labels[pads] == IGNORE).all()
    assert (train.labels[:, 0] == IGNORE).all()  # position 0 is never a target
    used = train.labels != IGNORE
    assert torch.equal(train.labels[used], train.input_ids[used])
    # Eval windows (stride 1, new targets only): each target once, with min(position, 4) tokens of context.
    ev = make_windows(seqs, vocab, window=4, stride=1, new_targets_only=True)
    assert ev.n_targets == (9 + 1) + (2 + 1)  # layers + <eos> per architecture
    first = ev.labels[: len(ev) - 1]  # the 9-layer sequence's windows (the short one is the last)
    full = [vocab.bos_id, *range(4, 13), vocab.eos_id]
    got = []
    for x, y in zip(ev.input_ids.tolist(), first.tolist()):
        for j, t in enumerate(y):
            if t != IGNORE:
                got.append(t)
                ctx = x[:j]
                pos = full.index(t) if t != vocab.eos_id else len(full) - 1
                assert ctx == full[max(pos - 4, 0) : pos]  # exactly the preceding tokens, none of another arch
    assert got == full[1:]
    with pytest.raises(LmnasError):
        make_windows(seqs, vocab, window=4, stride=5)


def test_split_holds_out_whole_architectures() -> None:
    keys = [tuple(r) for r in synthetic_rows(60, 3, "x")["structures"]]
    train, val = split_by_group(keys, 0.25, seed=7)
    assert sorted(train + val) == list(range(60))
    assert not {keys[i] for i in train} & {keys[i] for i in val}  # duplicates never straddle
    n_groups = len(set(keys))
    assert len({keys[i] for i in val}) == round(0.25 * n_groups)
    assert split_by_group(keys, 0.25, seed=7) == (train, val)
    assert split_by_group(keys, 0.25, seed=8) != (train, val)
    assert len(split_by_group(keys[:3], 0.01, seed=0)[1]) == 1  # a tiny corpus still holds one out (round gives 0)


def test_gpt_learns_motifs_far_above_chance(trained: tuple[Path, Path, dict]) -> None:
    corpus_dir, out, metrics = trained
    for phase, n_arch, seed in (("pretrain", 80, 0), ("finetune", 40, 1)):  # fine-tune splits with seed + 1
        m = metrics[phase]
        keys = [tuple(s) for s in read_corpus(corpus_dir / f"{phase}.parquet").structures]
        train_rows, val_rows = split_by_group(keys, TRAIN_KW["val_fraction"], seed=seed)
        assert (m["n_arch"], m["n_arch_train"], m["n_arch_val"]) == (n_arch, len(train_rows), len(val_rows))
        assert len(m["epochs"]) == {"pretrain": 12, "finetune": 6}[phase]
        final = m["final"]
        assert final["val_top1"] >= 0.7, (phase, final)
        assert final["val_top1"] >= 2.5 * m["val_majority_top1"], (phase, final, m["val_majority_top1"])
        assert final["val_top5"] >= final["val_top1"]
        assert m["epochs"][-1]["train_loss"] < m["epochs"][0]["train_loss"]
        assert m["tokens_per_s"] > 0  # a measured rate: its value is the host's
    assert metrics["finetune"]["final"]["val_loss"] < 1.0  # nats/token; uniform would be ln(24) = 3.2
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["finetune"]["final"] == pytest.approx(metrics["finetune"]["final"])
    with Image.open(out / "loss_curves.png") as png:
        assert png.format == "PNG" and min(png.size) >= 200
    for sub in ("pretrained", "finetuned"):
        assert (out / sub / "model.safetensors").is_file() and (out / sub / "vocab.json").is_file()


def test_save_load_round_trip_gives_identical_logits(tmp_path: Path, trained: tuple[Path, Path, dict]) -> None:
    torch.manual_seed(0)
    model = build_model(30, TINY).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    loaded = type(model).from_pretrained(tmp_path).eval()
    x = torch.randint(0, 30, (3, TINY.window + 1))
    with torch.no_grad():
        assert torch.equal(model(input_ids=x).logits, loaded(input_ids=x).logits)
    # The trained artefacts reproduce the held-out numbers computed in memory during training.
    corpus_dir, out, metrics = trained
    pred = ArchGPTPredictor.load(out / "finetuned")
    finetune = read_corpus(corpus_dir / "finetune.parquet", need_blocks=True)
    # The fine-tune phase splits with seed + 1 (TRAIN_KW seed is 0).
    _, val_rows = split_by_group([tuple(s) for s in finetune.structures], TRAIN_KW["val_fraction"], seed=1)
    ids = [pred.vocab.encode_structures(finetune.structures[i], add_bos_eos=False) for i in val_rows]
    val = make_windows(ids, pred.vocab, TINY.window, 1, new_targets_only=True)
    again = evaluate(pred.model, val, pred.vocab, batch_size=512, device=torch.device("cpu"))
    final = metrics["finetune"]["final"]
    assert (again["loss"], again["top1"], again["top5"]) == (final["val_loss"], final["val_top1"], final["val_top5"])
    net, labels = load_block_classifier(out / "finetuned", pred.model.get_input_embeddings().weight)
    x_val, y_val = block_examples(finetune, val_rows, pred.vocab, TINY.window)
    with torch.no_grad():
        guess = net(torch.tensor(x_val)).argmax(-1).tolist()
    accuracy = sum(labels[g] == y for g, y in zip(guess, y_val)) / len(y_val)
    assert accuracy == metrics["block_classifier"]["val_accuracy"]


def test_block_classifier_learns_synthetic_blocks(trained: tuple[Path, Path, dict]) -> None:
    _, out, metrics = trained
    clf = metrics["block_classifier"]
    assert clf["labels"] == sorted(MOTIFS)
    assert json.loads((out / "finetuned" / "block_labels.json").read_text())["labels"] == sorted(MOTIFS)
    corpus_dir = trained[0]
    finetune = read_corpus(corpus_dir / "finetune.parquet", need_blocks=True)
    train_rows, val_rows = split_by_group([tuple(s) for s in finetune.structures], TRAIN_KW["val_fraction"], seed=1)
    # one example per layer inside a block (stem and head layers carry no block label)
    labelled = lambda rows: sum(1 for i in rows for block in finetune.blocks[i] if block)  # noqa: E731
    assert (clf["n_train"], clf["n_val"]) == (labelled(train_rows), labelled(val_rows))
    assert clf["val_accuracy"] >= 0.95
    assert clf["val_accuracy"] > clf["val_majority_accuracy"] + 0.3


def test_predictor_predicts_and_respects_allowed(trained: tuple[Path, Path, dict]) -> None:
    _, out, _ = trained
    pred = ArchGPTPredictor.load(out / "finetuned")
    rng = random.Random(0)
    # Inside a block the next layer and its block are determined by the context.
    for block, motif in MOTIFS.items():
        context = STEM + MOTIFS["BasicBlock"] + motif[:2]
        probs = pred.next_layer_probs(context)
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert max(probs, key=probs.get) == motif[2]
        got = pred.predict_block_detailed(context, None, rng, temperature=0)
        assert (got.block, got.next_layer, got.reason) == (block, motif[2], "classifier")
    unknown = pred.next_layer_probs(["never_seen_layer"] * 3)  # unknown structures map to <unk>...
    assert unknown == pred.next_layer_probs(["another_unseen_layer"] * 3)  # ...so any two give the same
    assert unknown != pred.next_layer_probs(STEM) and sum(unknown.values()) == pytest.approx(1.0, abs=1e-5)
    context = STEM + MOTIFS["Bottleneck"][:4]
    for _ in range(20):
        assert pred.predict_block(context, ["InvertedResidual"], rng) == "InvertedResidual"
        two = ["BasicBlock", "InvertedResidual"]
        assert pred.predict_block(context, two, rng, temperature=2.0) in two
    fallback = pred.predict_block_detailed(context, ["SqueezeExcitation", "Inception"], rng)
    assert fallback.block in {"SqueezeExcitation", "Inception"} and fallback.reason.startswith("fallback")
    with pytest.raises(LmnasError):
        pred.predict_block(context, [], rng)
    seq = []
    for global_seed in range(3):  # other global RNG states: only the generator passed in may decide
        random.seed(global_seed)
        torch.manual_seed(global_seed)
        seq.append(pred.predict_block(STEM, None, random.Random(5), temperature=2.0))
    assert len(set(seq)) == 1  # same rng seed, same draw


def test_resume_skips_finished_phases(trained: tuple[Path, Path, dict]) -> None:
    corpus, out, metrics = trained
    before = (out / "pretrained" / "model.safetensors").stat().st_mtime_ns
    again = train_archgpt(corpus, out, pretrain_epochs=12, finetune_epochs=6, **TRAIN_KW)
    assert again["pretrain"]["resumed"] and again["finetune"]["resumed"]
    assert again["finetune"]["final"] == metrics["finetune"]["final"]
    assert (out / "pretrained" / "model.safetensors").stat().st_mtime_ns == before
    with pytest.raises(LmnasError, match="saved model has"):
        train_archgpt(corpus, out, **(TRAIN_KW | {"cfg": ArchGPTConfig(n_layer=1, n_head=2, n_embd=32, window=6)}))


def test_training_is_deterministic_on_cpu(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus")
    kw = TRAIN_KW | {"classifier": ClassifierConfig(epochs=3)}
    runs = [train_archgpt(corpus, tmp_path / f"run{i}", pretrain_epochs=2, finetune_epochs=1, **kw) for i in range(2)]
    for phase in ("pretrain", "finetune"):
        assert runs[0][phase]["epochs"] == runs[1][phase]["epochs"]
    assert runs[0]["block_classifier"] == runs[1]["block_classifier"]
    for name in ("model.safetensors", "block_classifier.safetensors"):
        a, b = (load_file(tmp_path / f"run{i}" / "finetuned" / name) for i in range(2))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert load_vocab(tmp_path / "run0" / "finetuned" / "vocab.json").tokens == load_vocab(corpus / "vocab.json").tokens
