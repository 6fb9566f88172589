"""What every Snakemake script shares: tee output to the rule's log, one-line errors, headlines."""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from lmnas.errors import LmnasError


class _Tee:
    def __init__(self, *streams: TextIO) -> None:
        self.streams = streams

    def write(self, text: str) -> int:
        for stream in self.streams:
            stream.write(text)
            stream.flush()
        return len(text)

    def flush(self) -> None:
        for stream in self.streams:
            stream.flush()

    def isatty(self) -> bool:
        return False


def run_stage(smk: Any, body: Callable[[Any], None]) -> None:
    """Run `body(snakemake)` with stdout/stderr also written to the rule's log.

    A user-fixable LmnasError ends the job with one line naming the problem (and exit 1,
    so Snakemake removes the job's outputs and marks nothing complete). Any other exception is
    a crash: its traceback goes to the log too (not only to the terminal), then exit 1.
    A rule with a `headline` output gets its few headline figures written from its detail
    metrics (lmnas.headline).
    """
    log_path = Path(smk.log[0]) if smk.log else None
    with contextlib.ExitStack() as stack:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = stack.enter_context(log_path.open("w"))
            stack.enter_context(contextlib.redirect_stdout(_Tee(sys.__stdout__, log)))
            stack.enter_context(contextlib.redirect_stderr(_Tee(sys.__stderr__, log)))
        try:
            import torch

            # Match the rule's `threads:`; torch's default (all cores) oversubscribes parallel jobs.
            torch.set_num_threads(max(1, int(smk.threads)))
            body(smk)
            if "headline" in smk.output.keys():
                from lmnas.headline import DETAIL_OUTPUT, write_headline

                write_headline(smk.rule, [getattr(smk.output, name) for name in DETAIL_OUTPUT[smk.rule]],
                               smk.output.headline)
        except LmnasError as error:
            print(f"lmnas: {smk.rule}: {error}", file=sys.stderr)
            sys.exit(1)
        except Exception:  # noqa: BLE001 (a crash: record it where the rule's log is)
            traceback.print_exc()
            print(f"lmnas: {smk.rule}: crashed; traceback above and in {log_path}", file=sys.stderr)
            sys.exit(1)
