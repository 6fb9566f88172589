"""NAS-Bench-101: the cell spec and hash, its records (JSON / Parquet / tfrecord), the network."""

from lmnas.nasbench101.cell import AVAILABLE_OPS, CellSpec, hash_module, random_cell
from lmnas.nasbench101.network import NB101Cell, NB101Network, build_network, count_parameters
from lmnas.nasbench101.records import Record, dedup_records, load_records
from lmnas.nasbench101.tfrecord import NasbenchRun, read_runs, summarise_runs, write_tfrecord

__all__ = [
    "AVAILABLE_OPS",
    "CellSpec",
    "NB101Cell",
    "NB101Network",
    "NasbenchRun",
    "Record",
    "build_network",
    "count_parameters",
    "dedup_records",
    "hash_module",
    "load_records",
    "random_cell",
    "read_runs",
    "summarise_runs",
    "write_tfrecord",
]
