"""GA+GPT (GPT-NAS): the GA, with every offspring's blocks masked at a rate that decays
linearly from `mask_rate` to 0 over the generations, and each masked block re-generated:
the architecture GPT predicts the next layer from the layers before the block, and the
block classifier turns (context, predicted layer) into a block class.

On NAS-Bench-101 the maskable units are the interior vertices of the cell, and a masked
vertex's op is re-generated from the GPT's next-layer distribution alone (no classifier):
the context is the layers that run before that vertex's op in the first cell of the first
stack (stem, the vertex's input projection, the ops of the vertices before it). Every later
cell repeats the same cell, so the first one says what the GPT would put there. The mass of
the predicted layers that are an op (`op_of_layer`: Conv2d 3x3, Conv2d 1x1, MaxPool2d) is
summed per op and renormalised over the three; the op is the most probable at temperature 0,
else drawn from p^(1/T). The child is then canonicalised and, when the space is restricted
to candidates (a table), moved to the nearest candidate as mutation children are.

Initial population (`reconstruct_initial`, GPT-NAS): every randomly sampled architecture of
generation 0 is reconstructed before it is evaluated: its blocks (cell vertices) are masked at
`mask_rate` and re-generated as above (the paper reconstructs every architecture; its Table 4
shows masking lifting initial architectures by 5-14 points). Off by default, so the plain
GA+GPT keeps the GA's random generation 0; these children have no parent (no lineage).

Reconstruction priors on NAS-Bench-101 (`reconstruct`, issue 18; the GA, seeds and mask draws are the
same for all, so equal budgets compare only the prior): "gpt" (the paper's layer GPT above, the
default), "uniform" (each masked op redrawn uniformly), "fixed-op" (each masked op set to `fixed_op`,
conv3x3 by default), "op-slot" (an op-slot GPT, `archgpt.slot_scoring`: the masked vertices re-chosen
jointly by whole-cell likelihood, among the table's cells that equal the child outside the masked
slots, with the quality bucket `bucket` as prefix; greedy at temperature 0, top-k a setting; when the
table has no such cell the child is kept, repaired as a mutation child is). `archgpt_dir` is the
op-slot GPT's save_pretrained folder for "op-slot", unused by "uniform"/"fixed-op".

Online adaptation (`online_steps` > 0, op-slot only; beyond the paper, issue 18): before each
offspring generation the op-slot GPT is fine-tuned for `online_steps` Adam steps (lr `online_lr`) on
the `online_top` best cells measured so far (the surviving population's head), each with the
`bucket` prefix the reconstructions are generated in, so "the top bucket" comes to mean this
search's best, not only the pre-training table's. The seed is (seed, generation): replaying the
same results (resume) refits the same model.

Lineage (for weight inheritance, `Strategy.lineage`; gptnas-blocks only): every offspring
names its parent, the genotype it was derived from. GA.offspring draws two tournament winners, recombines and
mutates them, then hands each child to `regenerate`; the parent of a child is whichever of
those two winners has more blocks identical to the child's before masking (same position,
code, widths and stride: `GPTNASBlockSpace.block_specs`), the first winner on a tie. Its
"regenerated" blocks are those the child cannot inherit: the masked (GPT re-generated) ones
and any other that differs from the parent's block at the same position.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from lmnas.errors import LmnasError
from lmnas.nasbench101 import CellSpec
from lmnas.nasbench101.cell import AVAILABLE_OPS, CONV1X1, CONV3X3, MAXPOOL3X3
from lmnas.spaces.base import REGENERATES_BLOCKS, REGENERATES_VERTEX_OPS, Genotype, SearchSpace
from lmnas.spaces.gptnas_blocks import CODE_OF_LABEL, GPTNASBlockSpace
from lmnas.spaces.nas_bench_101 import NASBench101Space, canonical_cell
from lmnas.strategies import STRATEGIES
from lmnas.strategies.ga import GeneticAlgorithm


def mask_rate_at(initial: float, generation: int, generations: int) -> float:
    """Linear decay: `initial` for the first offspring generation (1), 0 after the last."""
    return initial * max(0.0, 1.0 - (generation - 1) / generations)


def block_contexts(
    space: GPTNASBlockSpace, genotype: tuple[str, ...], encoding: str = "size-free"
) -> list[list[str]]:
    """For each block i: the layer structures (in the GPT's `encoding`) that run before it
    (stem and blocks < i)."""
    from lmnas.encoding.trace import trace_layers

    layers = trace_layers(space.build(genotype), space.input_shape)
    contexts: list[list[str]] = []
    for i in range(len(genotype)):
        prefix = f"blocks.{i}."
        first = next((k for k, layer in enumerate(layers) if layer.name.startswith(prefix)), len(layers))
        contexts.append([layer.structure(encoding) for layer in layers[:first]])
    return contexts


def vertex_context(space: NASBench101Space, cell: CellSpec, vertex: int, encoding: str = "size-free") -> list[str]:
    """The layer structures that run before interior `vertex`'s op in the first cell (features.1).
    `cell` keeps its vertex order (no canonicalisation), so `vertex` names the same op module.
    The layers are computed from the cell (`encoding.nb101_layers`, equal to the traced network's)."""
    from lmnas.encoding.nb101_layers import cell_layers

    layers = cell_layers(cell, space.num_classes, space.stem_channels, space.num_stacks, space.cells_per_stack,
                         space.input_shape)
    op = f"features.1.vertex_ops.{vertex}"  # the op module itself (MaxPool2d) or its Conv2d/BN/ReLU
    first = next((k for k, layer in enumerate(layers) if layer.name == op or layer.name.startswith(op + ".")),
                 len(layers))
    return [layer.structure(encoding) for layer in layers[:first]]


def op_of_layer(structure: str) -> str | None:
    """The NAS-Bench-101 op a predicted layer structure stands for, None if it is none of them."""
    kind, kernel = (structure.split("|") + [""])[:2]
    if kind == "Conv2d":
        return {"k3-3": CONV3X3, "k1-1": CONV1X1}.get(kernel)
    return MAXPOOL3X3 if kind == "MaxPool2d" else None


def predict_op(probs: dict[str, float], rng: random.Random, temperature: float) -> str:
    """An op from next-layer probabilities: summed per op, renormalised over the three ops,
    argmax at temperature 0, else drawn from p^(1/T) with `rng`."""
    mass = dict.fromkeys((CONV3X3, CONV1X1, MAXPOOL3X3), 0.0)
    for structure, p in probs.items():
        op = op_of_layer(structure)
        if op is not None:
            mass[op] += p
    if sum(mass.values()) <= 0.0:
        raise LmnasError("ga-gpt on nas-bench-101: the architecture GPT's vocabulary has no Conv2d 3x3/1x1 "
                         "or MaxPool2d layer; train it on a corpus with NAS-Bench-101 cells")
    ops = list(mass)
    if temperature == 0:
        return max(ops, key=lambda op: mass[op])
    return rng.choices(ops, weights=[mass[op] ** (1.0 / temperature) for op in ops])[0]


def load_predictor(strategy: str, space: SearchSpace, archgpt_dir: str | Path, temperature: float, device: str) -> Any:
    """The architecture GPT of a strategy that re-generates gptnas-blocks blocks or nas-bench-101 ops."""
    if space.regenerates is None:
        raise LmnasError(f"strategy {strategy} needs the gptnas-blocks or nas-bench-101 space, not {space.name!r}")
    if temperature < 0:
        raise LmnasError(f"strategy {strategy}: temperature must be >= 0, got {temperature}")
    from lmnas.archgpt.predictor import ArchGPTPredictor

    return ArchGPTPredictor.load(Path(archgpt_dir), device=device)


RECONSTRUCTORS = ("gpt", "uniform", "fixed-op", "op-slot")


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
        reconstruct_initial: bool = False,
        reconstruct: str = "gpt",
        fixed_op: str = CONV3X3,
        bucket: int | None = None,
        top_k: int = 0,
        online_steps: int = 0,
        online_top: int = 10,
        online_lr: float = 1e-3,
        **ga_settings: Any,
    ) -> None:
        if reconstruct not in RECONSTRUCTORS:
            raise LmnasError(f"strategy ga-gpt: reconstruct {reconstruct!r}; expected one of {list(RECONSTRUCTORS)}")
        if reconstruct != "gpt" and space.regenerates != REGENERATES_VERTEX_OPS:
            raise LmnasError(f"strategy ga-gpt: reconstruct {reconstruct!r} is for nas-bench-101 only")
        if online_steps and reconstruct != "op-slot":
            raise LmnasError(f"strategy ga-gpt: online_steps is for reconstruct 'op-slot', not {reconstruct!r}")
        if online_steps < 0 or online_top < 1 or online_lr <= 0:
            raise LmnasError(f"strategy ga-gpt: online_steps >= 0, online_top >= 1 and online_lr > 0; got "
                             f"{online_steps}, {online_top}, {online_lr}")
        if fixed_op not in AVAILABLE_OPS:
            raise LmnasError(f"strategy ga-gpt: fixed_op {fixed_op!r}; expected one of {list(AVAILABLE_OPS)}")
        if reconstruct == "gpt":
            predictor = load_predictor("ga-gpt", space, archgpt_dir, temperature, device)
        elif reconstruct == "op-slot":
            from transformers import GPT2LMHeadModel

            if not (Path(archgpt_dir) / "model.safetensors").is_file():
                raise LmnasError(f"strategy ga-gpt: {archgpt_dir}: no model.safetensors of an op-slot GPT")
            predictor = GPT2LMHeadModel.from_pretrained(archgpt_dir).to(device).eval()
        else:
            predictor = None
        self.reconstruct_mode = reconstruct
        self.fixed_op = fixed_op
        self.bucket = bucket
        self.top_k = int(top_k)
        self.online = {"steps": int(online_steps), "top": int(online_top), "lr": float(online_lr)}
        self.off_table = 0  # op-slot reconstructions with no table cell to go to
        super().__init__(space, seed, **ga_settings)
        self.archgpt_dir = Path(archgpt_dir)
        self.predictor = predictor
        self.mask_rate = mask_rate
        self.temperature = temperature
        self.reconstruct_initial = reconstruct_initial
        self.reconstructed = 0  # blocks / cell vertices re-generated in generation 0
        blocks = space.regenerates == REGENERATES_BLOCKS
        self.allowed = [space.block_label(code) for code in space.block_types] if blocks else []
        self.regenerated = 0  # blocks / cell vertices re-generated so far
        self.selected: list[Genotype] = []  # the last two tournament winners
        self.lineages: dict[str, dict[str, Any]] = {}  # key -> lineage, for the batch last asked

    def ask(self) -> list[Genotype]:
        self.lineages = {}
        if self.online["steps"] and 1 <= self.generation <= self.generations and not self.pending:
            self.adapt()
        return super().ask()

    def adapt(self) -> None:
        """Fine-tune the op-slot GPT on the best cells measured so far (see module doc)."""
        from lmnas.archgpt.slot_scoring import fit_opslot

        best = [genotype for genotype, _ in self.population[: self.online["top"]]]
        buckets = None if self.bucket is None else [self.bucket] * len(best)
        fit_opslot(self.predictor, best, buckets, steps=self.online["steps"], batch_size=len(best),
                   lr=self.online["lr"], seed=self.seed * 1000 + self.generation)

    def initial(self) -> list[Genotype]:
        """Generation 0: random architectures, reconstructed by the GPT when `reconstruct_initial`."""
        batch = super().initial()
        if not self.reconstruct_initial:
            return batch
        before = self.regenerated
        batch = [self.reconstruct(g, self.mask_rate) for g in batch]
        self.reconstructed += self.regenerated - before
        return batch

    def reconstruct(self, genotype: Genotype, rate: float) -> Genotype:
        """`genotype` with its units masked at `rate` and re-generated by the GPT (no lineage kept)."""
        if self.space.regenerates == REGENERATES_BLOCKS:
            return self.mask_blocks(tuple(genotype), self.draw_masked(len(genotype), rate))
        return self.mask_cell(genotype, self.draw_masked(genotype.num_vertices - 2, rate))

    def select(self) -> Genotype:
        winner = super().select()
        self.selected = [*self.selected, winner][-2:]  # the two parents of the next children
        return winner

    def regenerate(self, child: Genotype) -> Genotype:
        """The per-space regenerator: masked blocks (gptnas-blocks) or masked cell vertices (nas-bench-101)."""
        if self.space.regenerates == REGENERATES_BLOCKS:
            return self.regenerate_blocks(child)
        return self.regenerate_cell(child)

    def masked_units(self, count: int) -> list[int]:
        """Indices of `count` units masked at this generation's rate."""
        return self.draw_masked(count, mask_rate_at(self.mask_rate, self.generation, self.generations))

    def draw_masked(self, count: int, rate: float) -> list[int]:
        """Each of `count` units masked with probability `rate` (no draw at rate 0, so that mask
        rate 0 is exactly the plain GA)."""
        return [i for i in range(count) if self.rng.random() < rate] if rate > 0 else []

    def regenerate_cell(self, child: CellSpec) -> CellSpec:
        return self.mask_cell(child, self.masked_units(child.num_vertices - 2))

    def mask_cell(self, child: CellSpec, masked: list[int]) -> CellSpec:
        """NAS-Bench-101: re-generate the ops of masked interior vertices, first to last, so later
        vertices see the re-generated ops; canonical, and a candidate when the space has them."""
        if self.reconstruct_mode == "op-slot":
            return self.mask_cell_opslot(child, masked)
        ops = list(child.ops)
        for i in masked:
            vertex = i + 1
            if self.reconstruct_mode != "gpt":
                ops[vertex] = self.rng.choice(AVAILABLE_OPS) if self.reconstruct_mode == "uniform" else self.fixed_op
                self.regenerated += 1
                continue
            context = vertex_context(self.space, CellSpec(child.matrix, tuple(ops)), vertex,
                                     self.predictor.encoding)
            ops[vertex] = predict_op(self.predictor.next_layer_probs(context), self.rng, self.temperature)
            self.regenerated += 1
        cell = canonical_cell(CellSpec(child.matrix, tuple(ops)))
        # The space's own repair for mutation children: the nearest candidate (the cell if no candidates).
        return self.space.validate(self.space.nearest(cell, self.rng))

    def mask_cell_opslot(self, child: CellSpec, masked: list[int]) -> CellSpec:
        """Masked vertices re-chosen jointly by the op-slot GPT among the table's cells (no snap)."""
        from lmnas.archgpt.slot_scoring import DecodePolicy, candidate_cells, reconstruct_cell

        if not masked:
            return self.space.validate(self.space.nearest(canonical_cell(child), self.rng))
        space = self.space
        in_space = None if space.candidates is None else (lambda c: space.canonical(c) in space._candidate_set)
        vertices = [i + 1 for i in masked]
        self.regenerated += len(vertices)
        if in_space is not None and not candidate_cells(child, vertices, in_space):
            self.off_table += 1
            return space.validate(space.nearest(canonical_cell(child), self.rng))
        cell = reconstruct_cell(self.predictor, child, vertices, self.rng,
                                DecodePolicy(self.temperature, self.top_k), self.bucket, in_space)
        return space.validate(cell)

    def regenerate_blocks(self, child: Genotype) -> Genotype:
        parent = self.closest_parent(child)
        masked = self.masked_units(len(child))
        child = self.mask_blocks(tuple(child), masked)
        changed = set(masked) | set(self.space.new_blocks(child, parent))
        self.lineages.setdefault(self.space.key(child), {
            "parent": self.space.key(parent), "regenerated": sorted(changed), "masked": masked})
        return child

    def mask_blocks(self, genotype: tuple[str, ...], masked: list[int]) -> tuple[str, ...]:
        """Re-generate the masked blocks left to right, so later blocks see the re-generated ones."""
        blocks = list(genotype)
        for i in masked:
            context = block_contexts(self.space, tuple(blocks), self.predictor.encoding)[i]
            label = self.predictor.predict_block(
                context, allowed=self.allowed, rng=self.rng, temperature=self.temperature
            )
            blocks[i] = CODE_OF_LABEL[label]
            self.regenerated += 1
        return tuple(blocks)

    def closest_parent(self, child: Genotype) -> Genotype:
        """The selected parent sharing the most blocks with `child` (the first one on a tie)."""
        specs = self.space.block_specs(child)
        return max(self.selected, key=lambda p: sum(a == b for a, b in zip(self.space.block_specs(p), specs)))

    def lineage(self, genotype: Genotype) -> dict[str, Any] | None:
        """{"parent": key, "regenerated": [indices to train], "masked": [indices the GPT re-generated]}
        for this generation's offspring; None for the initial population and on nas-bench-101."""
        return self.lineages.get(self.space.key(genotype))

    def settings(self) -> dict[str, Any]:
        return {
            **super().settings(),
            "archgpt_dir": str(self.archgpt_dir),
            "mask_rate": self.mask_rate,
            "temperature": self.temperature,
            "reconstruct_initial": self.reconstruct_initial,
            # Only when not the paper's GPT, so earlier runs keep their fingerprint.
            **({"reconstruct": self.reconstruct_mode, "fixed_op": self.fixed_op, "bucket": self.bucket,
                "top_k": self.top_k} if self.reconstruct_mode != "gpt" else {}),
            # Only when on, so earlier op-slot runs keep their fingerprint.
            **({f"online_{k}": v for k, v in self.online.items()} if self.online["steps"] else {}),
        }
