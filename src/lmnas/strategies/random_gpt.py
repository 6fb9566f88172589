"""Random+GPT (GPT-NAS, Table 6): random sampling whose candidates the architecture GPT rebuilds.

Each proposal is a uniformly sampled genotype (`space.sample`) in which every unit (a block of
gptnas-blocks, an interior vertex of a NAS-Bench-101 cell) is masked with probability
`mask_rate` and re-generated, first to last, exactly as GA+GPT re-generates an offspring
(`ga_gpt.vertex_context` + `predict_op` on NAS-Bench-101, `block_contexts` + the block
classifier on gptnas-blocks). Random search has no generations, so the rate stays constant
(GA+GPT decays it over its generations); the paper's 0.4 is the default. Mask rate 0 is plain
random search (no draws are made for the mask then, so the sample sequence is the same).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.evaluation.base import EvalResult
from lmnas.nasbench101 import CellSpec
from lmnas.spaces.base import REGENERATES_BLOCKS, Genotype, SearchSpace
from lmnas.spaces.gptnas_blocks import CODE_OF_LABEL
from lmnas.spaces.nas_bench_101 import canonical_cell
from lmnas.strategies import STRATEGIES
from lmnas.strategies.base import Strategy
from lmnas.strategies.ga_gpt import block_contexts, load_predictor, predict_op, vertex_context


@STRATEGIES.register("random-gpt")
class RandomWithGPT(Strategy):
    name = "random-gpt"

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        archgpt_dir: str | Path,
        mask_rate: float = 0.4,
        temperature: float = 1.0,
        device: str = "cpu",
        batch_size: int = 1,
    ) -> None:
        if not 0.0 <= mask_rate <= 1.0:
            raise LmnasError(f"strategy random-gpt: mask_rate must be in [0, 1], got {mask_rate}")
        if batch_size < 1:
            raise LmnasError(f"strategy random-gpt: batch_size must be >= 1, got {batch_size}")
        predictor = load_predictor("random-gpt", space, archgpt_dir, temperature, device)
        super().__init__(space, seed)
        self.archgpt_dir = Path(archgpt_dir)
        self.predictor = predictor
        self.mask_rate = float(mask_rate)
        self.temperature = float(temperature)
        self.batch_size = int(batch_size)
        blocks = space.regenerates == REGENERATES_BLOCKS
        self.allowed = [space.block_label(code) for code in space.block_types] if blocks else []
        self.regenerated = 0  # units the GPT re-generated so far

    def ask(self) -> list[Genotype]:
        return [self.reconstruct(self.space.sample(self.rng)) for _ in range(self.batch_size)]

    def tell(self, genotype: Genotype, result: EvalResult) -> None:
        pass  # like random search, proposals do not depend on results

    def masked(self, count: int) -> list[int]:
        return [i for i in range(count) if self.rng.random() < self.mask_rate] if self.mask_rate > 0 else []

    def reconstruct(self, genotype: Genotype) -> Genotype:
        if self.space.regenerates == REGENERATES_BLOCKS:
            blocks = list(genotype)
            for i in self.masked(len(blocks)):  # left to right: later blocks see the re-generated ones
                context = block_contexts(self.space, tuple(blocks), self.predictor.encoding)[i]
                label = self.predictor.predict_block(context, allowed=self.allowed, rng=self.rng,
                                                     temperature=self.temperature)
                blocks[i] = CODE_OF_LABEL[label]
                self.regenerated += 1
            return tuple(blocks)
        cell: CellSpec = genotype
        ops = list(cell.ops)
        for i in self.masked(cell.num_vertices - 2):
            context = vertex_context(self.space, CellSpec(cell.matrix, tuple(ops)), i + 1, self.predictor.encoding)
            ops[i + 1] = predict_op(self.predictor.next_layer_probs(context), self.rng, self.temperature)
            self.regenerated += 1
        child = canonical_cell(CellSpec(cell.matrix, tuple(ops)))
        # Restricted to a table's cells: the nearest one, as GA+GPT repairs its children.
        return self.space.validate(self.space.nearest(child, self.rng))

    def settings(self) -> dict[str, Any]:
        return {"name": self.name, "archgpt_dir": str(self.archgpt_dir), "mask_rate": self.mask_rate,
                "temperature": self.temperature, "batch_size": self.batch_size}
