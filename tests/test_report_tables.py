"""The one mean ± std formatter of the report and the benchmark tables (pinned strings)."""

from lmnas.report.tables import mean_std


def test_mean_std_of_none_one_and_many_values():
    assert mean_std([]) == "–"
    assert mean_std([None, None]) == "–"  # missing values (a table without test accuracy) are skipped
    assert mean_std([91.256]) == "91.26"  # one trial: no spread to show
    assert mean_std([90.0, 92.0, None]) == "91.00 ± 1.41"  # sample std of 90, 92
    assert mean_std([3, 4, 8], 1) == "5.0 ± 2.6"  # ranks, one digit


def test_std_of_one_keeps_the_benchmark_column_shape():
    assert mean_std([91.256], std_of_one=True) == "91.26 ± 0.00"
    assert mean_std([90.0, 92.0], std_of_one=True) == "91.00 ± 1.41"
