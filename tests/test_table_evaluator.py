"""Table-lookup evaluation: the benchmark's numbers, clear errors, and lookups fast enough for big searches."""

import json
import random
import sys
import time
from pathlib import Path

import pytest

from lmnas.nas_tables import ENV_VAR, default_benchmarks_dir, table_stats
from lmnas.errors import LmnasError
from lmnas.evaluation import EVALUATORS
from lmnas.spaces import create_space

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import BENCH, needs  # noqa: E402

needs_tables = needs("nas-bench-macro_cifar10.json", "nasbench201_cifar10.json", "nasbench201_cifar100.json",
                     "nasbench201_imagenet.json", "nas_bench_201.json")

NB201_C10_BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_3x3~1|nor_conv_1x1~2|"


def table_evaluator(**settings):
    return EVALUATORS.create("table", **settings)


@pytest.fixture
def tiny_macro_dir(tmp_path):
    records = {
        "12000000": {"test_acc": [90.0, 91.0, 92.0], "mean_acc": 91.0, "std": 0.8, "params": 500_000, "flops": 9_000_000},
        "22212220": {"test_acc": [93.0, 93.0, 93.0], "mean_acc": 93.0, "std": 0.0, "params": 1_985_514, "flops": 85_164_544},
    }
    (tmp_path / "nas-bench-macro_cifar10.json").write_text(json.dumps(records))
    return tmp_path


# -- behaviour on a tiny table made here ----------------------------------------------------------
def test_lookup_returns_the_record(tiny_macro_dir):
    space, ev = create_space("nas-bench-macro"), table_evaluator(benchmarks_dir=str(tiny_macro_dir), cost_per_query_s=2.5)
    result = ev.evaluate(space, space.parse("12000000"), seed=0)
    assert result.metrics == {"accuracy": 91.0, "test_accuracy": 91.0, "std": 0.8}
    assert (result.params, result.flops, result.cost_s) == (500_000, 9_000_000, 2.5)
    result.metrics["accuracy"] = 0.0  # a caller's edit must not reach the cached row
    assert ev.evaluate(space, (1, 2, 0, 0, 0, 0, 0, 0), seed=1).accuracy == 91.0


def test_missing_key_names_the_key_and_the_file(tiny_macro_dir):
    space, ev = create_space("nas-bench-macro"), table_evaluator(benchmarks_dir=str(tiny_macro_dir))
    with pytest.raises(LmnasError, match=r"'11111111' is not in the benchmark table .*nas-bench-macro_cifar10\.json"):
        ev.evaluate(space, (1,) * 8, seed=0)


def test_missing_file_names_the_path_and_how_to_fix_it(tmp_path):
    space, ev = create_space("nas-bench-macro"), table_evaluator(benchmarks_dir=str(tmp_path / "nowhere"))
    with pytest.raises(LmnasError) as info:
        ev.evaluate(space, (1,) * 8, seed=0)
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "nas-bench-macro_cifar10.json") in message
    assert "search.evaluator.benchmarks_dir" in message and ENV_VAR in message


def test_broken_table_is_a_clear_error(tmp_path):
    (tmp_path / "nas-bench-macro_cifar10.json").write_text('{"12000000": {"mean_acc": 91.0}}')
    with pytest.raises(LmnasError, match=r"record '12000000' has no column 'std' \(it has \['mean_acc'\]\)"):
        table_evaluator(benchmarks_dir=str(tmp_path)).evaluate(create_space("nas-bench-macro"), (1, 2) + (0,) * 6, seed=0)


@pytest.mark.parametrize("value", ["high", None, True, [91.0]])
def test_a_non_numeric_value_names_the_file_record_column_and_value(tmp_path, value):
    row = {"mean_acc": 91.0, "std": 0.1, "params": 1, "flops": 2}
    (tmp_path / "nas-bench-macro_cifar10.json").write_text(json.dumps({"12000000": row, "22000000": {**row, "std": value}}))
    with pytest.raises(LmnasError) as info:
        table_evaluator(benchmarks_dir=str(tmp_path)).evaluate(create_space("nas-bench-macro"), (1, 2) + (0,) * 6, seed=0)
    assert str(info.value) == (f"benchmark table {tmp_path / 'nas-bench-macro_cifar10.json'}: record '22000000', "
                               f"column 'std': {value!r} is not a number")


def test_a_table_of_random_bytes_is_named_not_a_traceback(tmp_path):
    (tmp_path / "nas-bench-macro_cifar10.json").write_bytes(bytes(random.Random(0).randrange(256) for _ in range(4096)))
    with pytest.raises(LmnasError) as info:
        table_evaluator(benchmarks_dir=str(tmp_path)).evaluate(create_space("nas-bench-macro"), (1,) * 8, seed=0)
    message = str(info.value)
    assert message.startswith(f"benchmark table {tmp_path / 'nas-bench-macro_cifar10.json'}: not JSON text")
    assert "expected a JSON object keyed by architecture" in message


def test_folder_comes_from_setting_then_env_then_default(tiny_macro_dir, tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    # ../shared/benchmarks (resolved: it may be a link to the real folder)
    beside_checkout = (Path(__file__).resolve().parents[2] / "shared" / "benchmarks").resolve()
    assert default_benchmarks_dir().resolve() == beside_checkout
    assert Path(table_evaluator().settings()["benchmarks_dir"]).resolve() == beside_checkout
    monkeypatch.setenv(ENV_VAR, str(tiny_macro_dir))
    assert Path(table_evaluator().settings()["benchmarks_dir"]) == tiny_macro_dir.resolve()
    assert Path(table_evaluator(benchmarks_dir=str(tmp_path / "x")).settings()["benchmarks_dir"]) == tmp_path / "x"
    assert table_evaluator().evaluate(create_space("nas-bench-macro"), (2, 2, 2, 1, 2, 2, 2, 0), seed=0).accuracy == 93.0


def test_settings_rebuild_the_same_evaluator(tiny_macro_dir):
    ev = table_evaluator(benchmarks_dir=str(tiny_macro_dir), cost_per_query_s=1.0)
    settings = ev.settings()
    assert settings["benchmarks_dir"] == str(tiny_macro_dir.resolve()) and settings["cost_per_query_s"] == 1.0
    again = EVALUATORS.create(settings.pop("name"), **settings)
    space = create_space("nas-bench-macro")
    result = again.evaluate(space, (1, 2, 0, 0, 0, 0, 0, 0), seed=0)
    assert result.metrics == {"accuracy": 91.0, "test_accuracy": 91.0, "std": 0.8}  # the tiny table's row
    assert (result.params, result.flops, result.cost_s) == (500_000, 9_000_000, 1.0)
    assert result == ev.evaluate(space, (1, 2, 0, 0, 0, 0, 0, 0), seed=0)


def test_spaces_without_a_table_say_so(tiny_macro_dir):
    space = create_space("gptnas-blocks", min_blocks=3, max_blocks=3)
    with pytest.raises(LmnasError, match="no table for this space: gptnas-blocks"):
        table_evaluator(benchmarks_dir=str(tiny_macro_dir)).evaluate(space, space.sample(random.Random(0)), seed=0)


@pytest.mark.parametrize("name, file", [("channel-bench-macro-resnet", "Results_ResNet.json"),
                                        ("channel-bench-macro-mobilenet", "Results_MobileNet.json")])
def test_channel_bench_table_missing_says_where_to_get_it_and_a_copy_is_looked_up(name, file, tmp_path):
    space = create_space(name)
    copy = (f"curl -L -o {tmp_path / file} https://raw.githubusercontent.com/mingkai-zheng/GENIUS/"
            f"97361d30b2da337edd0c8e1ed71b7c88b4a85d38/benchmark/{file}")
    with pytest.raises(LmnasError, match=f"Channel-Bench-Macro is not shipped with the benchmarks; copy {file} from "
                                         f"github.com/mingkai-zheng/GENIUS") as error:
        table_evaluator(benchmarks_dir=str(tmp_path)).evaluate(space, (4, 4, 3, 2, 2, 1, 4), seed=0)
    assert copy in str(error.value)
    with pytest.raises(LmnasError) as error:  # what a search checks first (its fingerprint hashes the table)
        table_evaluator(benchmarks_dir=str(tmp_path)).input_files(space)
    assert copy in str(error.value)
    # a table in GENIUS's layout (key: 7 digits k in 1..4; mean of 3 runs) is read as it is
    (tmp_path / file).write_text(json.dumps({"4432214": {"acc": [93.67, 93.35, 93.3], "std": 0.2, "flops": 794495488,
                                                        "params": 6208394, "mean": 93.44}}))
    result = table_evaluator(benchmarks_dir=str(tmp_path)).evaluate(space, space.parse("4432214"), seed=0)
    assert result.metrics == {"accuracy": 93.44, "test_accuracy": 93.44, "std": 0.2} and result.params == 6208394


def test_bad_settings_are_rejected(tiny_macro_dir):
    macro, nb201 = create_space("nas-bench-macro"), create_space("nas-bench-201")
    with pytest.raises(LmnasError, match="only cifar10"):
        table_evaluator(benchmarks_dir=str(tiny_macro_dir), dataset="cifar100").evaluate(macro, (1,) * 8, seed=0)
    with pytest.raises(LmnasError, match="metric"):
        table_evaluator(benchmarks_dir=str(tiny_macro_dir), metric="val_acc").evaluate(macro, (1,) * 8, seed=0)
    with pytest.raises(LmnasError, match="12 or 200 epochs"):
        table_evaluator(benchmarks_dir=str(tiny_macro_dir), epochs=50).evaluate(nb201, ("none",) * 6, seed=0)
    with pytest.raises(LmnasError, match="NAS-Bench-201 has"):
        table_evaluator(benchmarks_dir=str(tiny_macro_dir), dataset="svhn").evaluate(nb201, ("none",) * 6, seed=0)


# -- the real tables -------------------------------------------------------------------------------
@needs_tables
def test_macro_best_key():
    space, ev = create_space("nas-bench-macro"), table_evaluator(benchmarks_dir=str(BENCH))
    result = ev.evaluate(space, space.parse("22212220"), seed=0)
    assert result.accuracy == 93.12666320800781
    assert result.metrics["test_accuracy"] == 93.12666320800781  # the table's only metric is test accuracy
    assert (result.params, result.flops, result.cost_s) == (1_985_514, 85_164_544, 0.0)


@needs_tables
def test_nb201_searches_on_validation_and_reports_test():
    space = create_space("nas-bench-201")
    g = space.parse(NB201_C10_BEST)
    c10 = table_evaluator(benchmarks_dir=str(BENCH)).evaluate(space, g, seed=0)
    assert c10.metrics == {"accuracy": 91.60666665039064, "val_accuracy": 91.60666665039064,
                           "test_accuracy": 94.37333333333333}
    assert (c10.params, c10.flops, c10.cost_s) == (None, None, 0.0)
    on_test = table_evaluator(benchmarks_dir=str(BENCH), dataset="cifar100", metric="test_acc").evaluate(space, g, seed=0)
    row = json.loads((BENCH / "nasbench201_cifar100.json").read_text())[NB201_C10_BEST]
    assert on_test.metrics == {"accuracy": row["test_acc_200"], "val_accuracy": row["val_acc_200"],
                               "test_accuracy": row["test_acc_200"]}
    assert row["test_acc_200"] != row["val_acc_200"]


@needs_tables
@pytest.mark.parametrize("dataset", ["cifar10", "cifar100", "imagenet16"])
def test_nb201_per_dataset_files_agree_with_the_combined_file(dataset):
    space, combined = create_space("nas-bench-201"), json.loads((BENCH / "nas_bench_201.json").read_text())
    ev200 = table_evaluator(benchmarks_dir=str(BENCH), dataset=dataset)
    ev12 = table_evaluator(benchmarks_dir=str(BENCH), dataset=dataset, epochs=12)
    for key in random.Random(0).sample(sorted(combined), 20):
        row = combined[key]
        r200, r12 = ev200.evaluate(space, space.parse(key), seed=0), ev12.evaluate(space, space.parse(key), seed=0)
        assert (r200.accuracy, r200.metrics["test_accuracy"]) == (row[f"{dataset}_val_acc_200"], row[f"{dataset}_test_acc_200"])
        assert (r12.accuracy, r12.metrics["test_accuracy"]) == (row[f"{dataset}_val_acc_12"], row[f"{dataset}_test_acc_12"])


# The README's oracle numbers: (best searched-on value, test accuracy of the architecture reaching it).
ORACLES = [
    ("nas-bench-macro", "cifar10", None, 93.12666320800781, 93.12666320800781),
    ("nas-bench-201", "cifar10", None, 91.60666665039064, 94.37333333333333),
    ("nas-bench-201", "cifar100", None, 73.4933333577474, 73.51333332112631),
    ("nas-bench-201", "imagenet16", None, 46.73333327229818, 46.1999999440511),
    ("nas-bench-201", "cifar10", 12, 84.89199999023438, None),
    ("nas-bench-201", "cifar100", 12, 61.32, None),
    ("nas-bench-201", "imagenet16", 12, 38.66666662597656, None),
]


@needs_tables
@pytest.mark.parametrize("space_name,dataset,epochs,best,test_of_best", ORACLES)
def test_optimum_matches_the_readme(space_name, dataset, epochs, best, test_of_best):
    ev = table_evaluator(benchmarks_dir=str(BENCH), dataset=dataset, epochs=epochs)
    stats = ev.optimum(create_space(space_name))
    assert stats.best_metric == best
    if test_of_best is not None:
        assert stats.test_of_best == test_of_best
    assert stats == table_stats(space_name, dataset, epochs, None, BENCH)


@needs_tables
def test_optimum_details():
    macro = table_stats("nas-bench-macro", benchmarks_dir=BENCH)
    assert macro.best_keys == ("22212202", "22212220")  # one network: identities differ in place only
    assert macro.size == 6561
    c10 = table_stats("nas-bench-201", "cifar10", benchmarks_dir=BENCH)
    assert c10.best_keys == (NB201_C10_BEST,) and c10.best_test == 94.37333333333333
    assert table_stats("nas-bench-201", "imagenet16", benchmarks_dir=BENCH).best_test == 47.31111100599501


@needs_tables
@pytest.mark.parametrize("space_name", ["nas-bench-macro", "nas-bench-201"])
def test_lookup_throughput(space_name, record_property):
    """Measured and reported (target >= 10,000/s), not asserted: timing is the host's. What is asserted
    is that every one of the 20,000 lookups returned its row of the file."""
    space, ev = create_space(space_name), table_evaluator(benchmarks_dir=str(BENCH))
    rng = random.Random(0)
    genotypes = [space.sample(rng) for _ in range(20_000)]
    ev.evaluate(space, genotypes[0], seed=0)  # load the table outside the timing
    start = time.perf_counter()
    results = [ev.evaluate(space, g, seed=0) for g in genotypes]
    rate = len(genotypes) / (time.perf_counter() - start)
    record_property("evaluations_per_s", round(rate))
    print(f"\n{space_name}: {rate:,.0f} table evaluations/s")
    file, column = {"nas-bench-macro": ("nas-bench-macro_cifar10.json", "mean_acc"),
                    "nas-bench-201": ("nasbench201_cifar10.json", "val_acc_200")}[space_name]
    raw = json.loads((BENCH / file).read_text())
    assert [r.accuracy for r in results] == [raw[space.key(g)][column] for g in genotypes]
