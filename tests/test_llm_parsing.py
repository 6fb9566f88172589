"""Reading genotypes out of LLM answers, validating them, and the prompts they answer."""

import json
import random
import re
import sys
from pathlib import Path

import pytest

from lmnas.llm.answers import extract_candidates, validate_answer
from lmnas.llm.prompts import PromptBuilder, Result, load_prompts, prompts_root
from lmnas.spaces import SPACES, create_space

sys.path.insert(0, str(Path(__file__).parent))
from bench_tables import BENCH, TRANSCRIPTS as TRANSCRIPTS_DIR, needs  # noqa: E402

TRANSCRIPTS = BENCH / TRANSCRIPTS_DIR
PROMPT_SPACES = sorted(p.name for p in prompts_root().iterdir() if (p / "settings.json").is_file())
SPACE_SETTINGS = {
    "gptnas-blocks": {"min_blocks": 3, "max_blocks": 6, "stage_widths": [16, 32, 64], "input_shape": [1, 8, 8]},
    "genius-imagenet": {"flops_limits": [270, 330], "flops_count": "genius"},
}


def space_and_format(name):
    space = create_space(name, **SPACE_SETTINGS.get(name, {}))
    return space, load_prompts(name).answer


def check(name, text, evaluated=None, wanted=1):
    space, fmt = space_and_format(name)
    return validate_answer(text, fmt, space, evaluated or {}, wanted=wanted)


def test_every_prompt_folder_is_a_registered_space():
    assert set(PROMPT_SPACES) <= set(SPACES.names())
    assert {"nas-bench-macro", "nas-bench-201", "channel-bench-macro-resnet", "channel-bench-macro-mobilenet",
            "genius-imagenet"} <= set(PROMPT_SPACES)


@pytest.mark.parametrize("name", PROMPT_SPACES)
def test_key_values_round_trip_through_the_answer_format(name):
    space, fmt = space_and_format(name)
    rng = random.Random(0)
    for _ in range(50):
        key = space.key(space.sample(rng))
        values = fmt.values_of(key)
        assert fmt.key_of(values) == key
        # what the prompt shows is read back as the same genotype
        verdict = validate_answer(fmt.display(values), fmt, space, {})
        assert [k for _, k in verdict.accepted] == [key], verdict.rejections


@pytest.mark.parametrize("name", PROMPT_SPACES)
def test_every_template_renders_and_hiding_removes_benchmark_names(name):
    space, fmt = space_and_format(name)
    prompts = load_prompts(name)
    key = space.key(space.sample(random.Random(1)))
    for hide in (False, True):
        builder = PromptBuilder(space, prompts, name_benchmark=not hide, proposals=2)
        history = [Result(key, 91.234, mflops=300.4), Result(key, 50.0, random=True)]
        texts = [m["content"] for m in builder.opening(history)] + [
            builder.results(history, 3)["content"], builder.refusal()["content"],
            builder.rejected(check(name, "[]").rejections or []) ["content"],
        ]
        joined = "\n".join(texts)
        assert "$" not in joined.replace("$ ", "")  # every placeholder filled
        assert f"{91.234:.{prompts.accuracy_decimals}f}%" in joined and "tried because no valid answer came" in joined
        if hide:
            assert not re.search(r"bench|genius", joined, re.I), re.search(r".{40}(bench|genius).{40}", joined, re.I)
    if prompts.benchmark:
        shown = PromptBuilder(space, prompts, name_benchmark=True).opening([])[1]["content"]
        assert prompts.benchmark in shown


# -- NAS-Bench-Macro: every answer shape -------------------------------------------------------
@pytest.mark.parametrize("text", [
    "[2, 2, 2, 1, 2, 2, 2, 0]",
    "I would go with [2, 2, 2, 1, 2, 2, 2, 0] since deeper stages help.",
    "```json\n{\"architecture\": [2, 2, 2, 1, 2, 2, 2, 0]}\n```",
    "```\n[2,2,2,1,2,2,2,0]\n```",
    "layer2: 2\nlayer3: 2\nlayer4: 2\nlayer5: 1\nlayer6: 2\nlayer7: 2\nlayer8: 2\nlayer9: 0",
    "The best choice is 22212220.",
    "{\"ops\": [\"2\", \"2\", \"2\", \"1\", \"2\", \"2\", \"2\", \"0\"]}",
])
def test_macro_answer_shapes(text):
    verdict = check("nas-bench-macro", text)
    assert [k for _, k in verdict.accepted] == ["22212220"]
    assert verdict.accepted[0][0] == (2, 2, 2, 1, 2, 2, 2, 0)


@pytest.mark.parametrize("text, reason, fragment", [
    ("[1, 2, 0]", "wrong_length", "has 3 values, expected 8"),
    ("[1, 1, 1, 1, 1, 1, 1, 1, 1, 1]", "wrong_length", "expected 8"),
    ("[1, 2, 3, 1, 2, 1, 2, 1]", "out_of_range", "value 3 for layer4 is not one of [0, 1, 2]"),
    ("[1.5, 1, 1, 1, 1, 1, 1, 1]", "out_of_range", "'1.5'"),
    ("[-1, 1, 1, 1, 1, 1, 1, 1]", "out_of_range", "value -1"),
    ("[2, 2, 2, 1, 2, 2, 2, 0]", "duplicate", "already evaluated: it gives an accuracy of 93.13%"),
    ("", "empty", "empty"),
    ("   \n ", "empty", "empty"),
    ("I'm sorry, but I cannot improve on these results.", "refusal", "declines"),
    ("}{][ not an answer", "unparseable", "no list of 8 values"),
    ("{\"a\": {\"b\": [[1, 2], [3]]}}", "wrong_length", "expected 8"),
])
def test_macro_rejections_say_why(text, reason, fragment):
    verdict = check("nas-bench-macro", text, evaluated={"22212220": 93.126663})
    assert not verdict.accepted
    assert verdict.rejections[0].reason == reason
    assert fragment in verdict.rejections[0].detail
    assert verdict.refused == (reason in ("empty", "refusal"))


def test_answers_are_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    text = f"__import__('os').system('touch {marker}') or eval('[1]*8') [1, 1]"
    verdict = check("nas-bench-macro", text)
    assert not verdict.accepted and verdict.rejections[0].reason == "wrong_length"
    assert not marker.exists()


def test_quoted_history_is_skipped_for_the_new_proposal():
    text = "[2, 2, 2, 1, 2, 2, 2, 0] gave 93.13%, so I now suggest [2, 2, 2, 2, 2, 2, 2, 0]."
    verdict = check("nas-bench-macro", text, evaluated={"22212220": 93.13})
    assert [k for _, k in verdict.accepted] == ["22222220"]


def test_several_proposals_in_one_answer():
    text = "[1, 1, 1, 1, 1, 1, 1, 1]\n[2, 2, 2, 2, 2, 2, 2, 2]\n[1, 1, 1, 1, 1, 1, 1, 1]\n[0, 1, 1, 1, 1, 1, 1, 1]"
    verdict = check("nas-bench-macro", text, wanted=2)
    assert [k for _, k in verdict.accepted] == ["11111111", "22222222"]


def test_a_huge_answer_is_read_quickly():
    verdict = check("nas-bench-macro", "[" + ", ".join(["1"] * 20000) + "]")
    assert verdict.rejections[0].reason == "wrong_length"


# -- NAS-Bench-201: ids, names, prose, the benchmark string -----------------------------------------
NB201_KEY = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_3x3~1|+|skip_connect~0|nor_conv_1x1~1|nor_conv_3x3~2|"


@pytest.mark.parametrize("text", [
    "[3, 1, 3, 1, 2, 3]",
    '["nor_conv_3x3", "skip_connect", "nor_conv_3x3", "skip_connect", "nor_conv_1x1", "nor_conv_3x3"]',
    "op0: nor_conv_3x3\nop1: skip_connect (identity)\nop2: nor_conv_3x3\nop3: nn.Identity()\n"
    "op4: ReLUConvBN 1x1\nop5: ReLUConvBN 3x3",
    "Use op_list[0] = 3, op_list[1] = 1, op_list[2] = 3, op_list[3] = 1, op_list[4] = 2, op_list[5] = 3.",
    f"In benchmark notation the cell is {NB201_KEY}, which keeps a skip path.",
])
def test_nb201_answer_shapes(text):
    verdict = check("nas-bench-201", text)
    assert [k for _, k in verdict.accepted] == [NB201_KEY]


def test_nb201_unknown_op_name_is_out_of_range():
    verdict = check("nas-bench-201", '["conv_5x5", "skip_connect", "none", "none", "none", "none"]')
    assert verdict.rejections[0].reason == "out_of_range" and "conv_5x5" in verdict.rejections[0].detail


# -- Channel-Bench-Macro: channel numbers, not digits --------------------------------------------------
def test_channel_lists_map_to_width_multipliers():
    verdict = check("channel-bench-macro-resnet", "[64, 192, 128, 256, 384, 128, 512]")
    assert [k for _, k in verdict.accepted] == ["1322314"]
    verdict = check("channel-bench-macro-mobilenet", "[128, 768, 192, 576, 256, 1536, 1024]")
    assert [k for _, k in verdict.accepted] == ["4413444"]
    bad = check("channel-bench-macro-resnet", "[64, 100, 128, 256, 384, 128, 512]")
    assert bad.rejections[0].reason == "out_of_range"
    assert "value 100 for channels[1] is not one of [64, 128, 192, 256]" == bad.rejections[0].detail


# -- GENIUS ImageNet: stage-wise prose, FLOPs feedback, the recorded GPT-4 chats ------------------
STAGED = """Based on the analysis:

1. Stage 1 (Layer 2 to Layer 7): [1, 0, 0, 0, 1, 0]
2. Stage 2 (Layer 8 to Layer 13): [1, 0, 1, 1, 0, 0]
3. Stage 3 (Layer 14 to Layer 19): [4, 0, 4, 4, 0, 0]
4. Stage 4 (Layer 20 to Layer 25): [5, 5, 0, 5, 5, 0]
5. Stage 5 (Layer 26 to Layer 31): [6, 0, 6, 6, 6, 6]

FLOPS stay in [270, 330]; flops_stage1_first[4] is 35.5."""


def test_imagenet_stage_lists_and_flops_feedback():
    verdict = check("genius-imagenet", STAGED)
    assert not verdict.accepted and verdict.rejections[0].reason == "constraint"
    detail = verdict.rejections[0].detail
    # GPT-4 was told "resulting 362 FLOPS, which is 32 FLOPS higher the upper bound of 330" for this design
    assert "resulting 362 FLOPS, which is 32 FLOPS higher the upper bound of 330" in detail
    lighter = STAGED.replace("[5, 5, 0, 5, 5, 0]", "[4, 4, 0, 4, 4, 0]").replace("[6, 0, 6, 6, 6, 6]", "[5, 0, 5, 5, 5, 0]")
    lighter = lighter.replace("[4, 0, 4, 4, 0, 0]", "[2, 0, 2, 2, 0, 0]")
    verdict = check("genius-imagenet", lighter)
    # skips inside a stage are moved to its end (a stage's first op stays): one key per network,
    # so reorderings are duplicates
    stages = [[1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [2, 2, 2, 0, 0, 0], [4, 4, 4, 4, 0, 0], [5, 5, 5, 5, 0, 0]]
    key = ",".join(str(op) for stage in stages for op in stage)
    assert [k for _, k in verdict.accepted] == [key] and not verdict.rejections
    reordered = lighter.replace("[1, 0, 0, 0, 1, 0]", "[1, 1, 0, 0, 0, 0]")
    assert check("genius-imagenet", reordered, evaluated={key: 72.46}).rejections[0].reason == "duplicate"


@needs(TRANSCRIPTS_DIR)
def test_every_recorded_gpt4_answer_parses_and_matches_its_feedback():
    space, fmt = space_and_format("genius-imagenet")
    answers, checked = 0, 0
    for path in sorted(TRANSCRIPTS.rglob("*.json")):
        chat = json.loads(path.read_text())
        for i, message in enumerate(chat):
            if message["role"] != "assistant":
                continue
            answers += 1
            candidates = extract_candidates(message["content"], fmt)
            assert candidates and len(candidates[0]) == 30, (path.name, i)
            follow = chat[i + 1]["content"] if i + 1 < len(chat) else ""
            told = re.search(r"resulting (\d+) FLOPS", follow)
            if told and path.name in ("329M.json", "401M.json"):  # both at 224 px, thop's count
                assert round(space.flops(tuple(candidates[0])) / 1e6) == int(told.group(1)), (path.name, i)
                checked += 1
    assert answers == 257 and checked == 23
