"""GA+GPT (GPT-NAS): the GA, with every offspring's blocks masked at a rate that decays
linearly from `mask_rate` to 0 over the generations, and each masked block re-generated:
the architecture GPT predicts the next layer from the layers before the block, and the
block classifier turns (context, predicted layer) into a block class.

Lineage (for weight inheritance, `Strategy.lineage`): every offspring names its parent, the
genotype it was derived from. GA.offspring draws two tournament winners, recombines and
mutates them, then hands each child to `regenerate`; the parent of a child is whichever of
those two winners has more blocks identical to the child's before masking (same position,
code, widths and stride: `inheritance.block_specs`), the first winner on a tie. Its
"regenerated" blocks are those the child cannot inherit: the masked (GPT re-generated) ones
and any other that differs from the parent's block at the same position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.evaluation.inheritance import block_specs, new_blocks
from lmnas.spaces.base import Genotype, SearchSpace
from lmnas.spaces.gptnas_blocks import CODE_OF_LABEL, GPTNASBlockSpace
from lmnas.strategies import STRATEGIES
from lmnas.strategies.ga import GeneticAlgorithm


def mask_rate_at(initial: float, generation: int, generations: int) -> float:
    """Linear decay: `initial` for the first offspring generation (1), 0 after the last."""
    return initial * max(0.0, 1.0 - (generation - 1) / generations)


def block_contexts(space: GPTNASBlockSpace, genotype: tuple[str, ...]) -> list[list[str]]:
    """For each block i: the layer structures that run before it (stem and blocks < i)."""
    from lmnas.encoding.trace import trace_layers

    layers = trace_layers(space.build(genotype), space.input_shape)
    contexts: list[list[str]] = []
    for i in range(len(genotype)):
        prefix = f"blocks.{i}."
        first = next((k for k, layer in enumerate(layers) if layer.name.startswith(prefix)), len(layers))
        contexts.append([layer.structure() for layer in layers[:first]])
    return contexts


@STRATEGIES.register("ga-gpt")
class GAWithGPT(GeneticAlgorithm):
    name = "ga-gpt"

    def __init__(
        self,
        space: SearchSpace,
        seed: int,
        archgpt_dir: str | Path,
        mask_rate: float = 0.4,
        temperature: float = 1.0,
        device: str = "cpu",
        **ga_settings: Any,
    ) -> None:
        if not isinstance(space, GPTNASBlockSpace):
            raise LmnasError(f"strategy ga-gpt needs the gptnas-blocks space, not {space.name!r}")
        super().__init__(space, seed, **ga_settings)
        from lmnas.archgpt.predictor import ArchGPTPredictor

        self.archgpt_dir = Path(archgpt_dir)
        self.predictor = ArchGPTPredictor.load(self.archgpt_dir, device=device)
        self.mask_rate = mask_rate
        self.temperature = temperature
        self.allowed = [space.block_label(code) for code in space.block_types]
        self.regenerated = 0  # blocks re-generated so far
        self.selected: list[Genotype] = []  # the last two tournament winners
        self.lineages: dict[str, dict[str, Any]] = {}  # key -> lineage, for the batch last asked

    def ask(self) -> list[Genotype]:
        self.lineages = {}
        return super().ask()

    def select(self) -> Genotype:
        winner = super().select()
        self.selected = [*self.selected, winner][-2:]  # the two parents of the next children
        return winner

    def regenerate(self, child: Genotype) -> Genotype:
        parent = self.closest_parent(child)
        rate = mask_rate_at(self.mask_rate, self.generation, self.generations)
        blocks = list(child)
        # Draw nothing at rate 0: with mask rate 0 the search is exactly the plain GA.
        masked = [i for i in range(len(blocks)) if self.rng.random() < rate] if rate > 0 else []
        for i in masked:  # left to right, so later blocks see the re-generated ones
            context = block_contexts(self.space, tuple(blocks))[i]
            label = self.predictor.predict_block(
                context, allowed=self.allowed, rng=self.rng, temperature=self.temperature
            )
            blocks[i] = CODE_OF_LABEL[label]
            self.regenerated += 1
        child = tuple(blocks)
        changed = set(masked) | set(new_blocks(self.space, child, parent))
        self.lineages.setdefault(self.space.key(child), {
            "parent": self.space.key(parent), "regenerated": sorted(changed), "masked": masked})
        return child

    def closest_parent(self, child: Genotype) -> Genotype:
        """The selected parent sharing the most blocks with `child` (the first one on a tie)."""
        specs = block_specs(self.space, child)
        return max(self.selected, key=lambda p: sum(a == b for a, b in zip(block_specs(self.space, p), specs)))

    def lineage(self, genotype: Genotype) -> dict[str, Any] | None:
        """{"parent": key, "regenerated": [indices to train], "masked": [indices the GPT re-generated]}
        for this generation's offspring; None for the initial population."""
        return self.lineages.get(self.space.key(genotype))

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "archgpt_dir": str(self.archgpt_dir),
            "mask_rate": self.mask_rate,
            "temperature": self.temperature,
        }
