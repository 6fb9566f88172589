"""GA+GPT (GPT-NAS): the GA, with every offspring's blocks masked at a rate that decays
linearly from `mask_rate` to 0 over the generations, and each masked block re-generated:
the architecture GPT predicts the next layer from the layers before the block, and the
block classifier turns (context, predicted layer) into a block class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
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
        self.regenerated = 0  # blocks re-generated so far (reported in settings)

    def regenerate(self, child: Genotype) -> Genotype:
        rate = mask_rate_at(self.mask_rate, self.generation, self.generations)
        if rate <= 0:  # draw nothing: with mask rate 0 the search is exactly the plain GA
            return child
        blocks = list(child)
        masked = [i for i in range(len(blocks)) if self.rng.random() < rate]
        for i in masked:  # left to right, so later blocks see the re-generated ones
            context = block_contexts(self.space, tuple(blocks))[i]
            label = self.predictor.predict_block(
                context, allowed=self.allowed, rng=self.rng, temperature=self.temperature
            )
            blocks[i] = CODE_OF_LABEL[label]
            self.regenerated += 1
        return tuple(blocks)

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "archgpt_dir": str(self.archgpt_dir),
            "mask_rate": self.mask_rate,
            "temperature": self.temperature,
        }
