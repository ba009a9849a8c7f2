"""The MARS ground-truth rule against hand-followed draws, and the GT list file's reader/writer."""

from __future__ import annotations

import json
import random

import pytest

from reactcli.data.mars import Recording
from reactcli.data.mars_gt import (
    GT_LIST_FORMAT,
    check_gt_sets_cover,
    draw_gt_sets,
    read_gt_list,
    write_gt_list,
)
from reactcli.errors import ReactError


def rec(role: str, session: str, stem: str) -> Recording:
    return Recording(role, session, stem)


def dyads(session: str, stems: list[str]) -> list[Recording]:
    return [rec(role, session, s) for s in stems for role in ("speaker", "listener")]


# session10 sorts before session2 (strings). Pools (others of the opposite role, target excluded):
#   session10: 4 dyads -> 3 others each (choices); session2: 13 dyads -> 12 others (sample);
#   session3: 1 dyad -> 0 others (the target 10 times).
# Extra recordings: a speaker without a listener in session2 (skipped, no draw) and a listener
# without a speaker in session3 (in the pool of session3's speaker, never an input itself).
S10 = [f"b{i}" for i in range(4)]
S2 = [f"c{i:02d}" for i in range(13)]
RECORDINGS = [
    *dyads("session2", S2),
    *dyads("session10", S10),
    *dyads("session3", ["d0"]),
    rec("speaker", "session2", "c99"),
    rec("listener", "session3", "zz"),
]


def expected_sets(seed: int, bidirectional: bool) -> list[tuple[str, list[str]]]:
    """The rule followed by hand: input order written out, one Random consumed in that order."""
    rng = random.Random(seed)
    out = []

    def draw(source: Recording, pool: list[Recording]) -> None:
        target = source.opposite()
        others = [r for r in pool if r != target]
        if len(others) >= 9:
            gts = [target, *rng.sample(others, 9)]
        elif others:
            gts = [target, *rng.choices(others, k=9)]
        else:
            gts = [target] * 10
        out.append((source.id, [g.id for g in gts]))

    lis10 = [rec("listener", "session10", s) for s in S10]
    lis2 = [rec("listener", "session2", s) for s in S2]
    lis3 = [rec("listener", "session3", "d0"), rec("listener", "session3", "zz")]
    for s in S10:
        draw(rec("speaker", "session10", s), lis10)
    for s in S2:  # c99 (no listener) is skipped and draws nothing
        draw(rec("speaker", "session2", s), lis2)
    draw(rec("speaker", "session3", "d0"), lis3)  # one other ("zz") -> choices
    if bidirectional:
        spk10 = [rec("speaker", "session10", s) for s in S10]
        spk2 = [rec("speaker", "session2", s) for s in [*S2, "c99"]]
        spk3 = [rec("speaker", "session3", "d0")]
        for s in S10:
            draw(rec("listener", "session10", s), spk10)
        for s in S2:
            draw(rec("listener", "session2", s), spk2)
        draw(rec("listener", "session3", "d0"), spk3)  # zero others -> target x 10
        # listener/session3/zz has no speaker: skipped
    return out


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("seed", [1234, 7])
def test_draw_follows_the_baseline_script_rule(seed: int, bidirectional: bool) -> None:
    shuffled = list(RECORDINGS)
    random.Random(99).shuffle(shuffled)  # the input order must not matter
    draw = draw_gt_sets(shuffled, seed=seed, bidirectional=bidirectional)
    got = [(s.sample.input.id, [g.id for g in s.gts]) for s in draw.sets]
    assert got == expected_sets(seed, bidirectional)
    unpaired = {r.id for r in draw.unpaired}
    assert unpaired == ({"speaker/session2/c99", "listener/session3/zz"} if bidirectional else {"speaker/session2/c99"})
    for s in draw.sets:
        assert s.sample.target == s.sample.input.opposite() and s.gts[0] == s.sample.target
        assert len(s.gts) == 10


def test_pool_sizes_use_sample_choices_and_repeat() -> None:
    draw = draw_gt_sets(RECORDINGS, bidirectional=True)
    by_input = {s.sample.input.id: s for s in draw.sets}
    sampled = by_input["speaker/session2/c00"].gts[1:]  # 12 others: 9 distinct, never the target
    assert len(set(sampled)) == 9 and rec("listener", "session2", "c00") not in sampled
    chosen = by_input["speaker/session10/b0"].gts[1:]  # 3 others: with replacement, target excluded
    assert set(chosen) <= {rec("listener", "session10", s) for s in S10[1:]}
    assert len(set(chosen)) < 9
    alone = by_input["listener/session3/d0"].gts  # no other speaker in session3
    assert alone == (rec("speaker", "session3", "d0"),) * 10


def test_session_order_is_string_order() -> None:
    draw = draw_gt_sets(RECORDINGS)
    sessions = [s.sample.input.session for s in draw.sets]
    assert sessions.index("session10") < sessions.index("session2") < sessions.index("session3")


def test_num_gts_one_and_invalid() -> None:
    draw = draw_gt_sets(RECORDINGS, num_gts=1)
    assert all(s.gts == (s.sample.target,) for s in draw.sets)
    with pytest.raises(ReactError, match="at least 1"):
        draw_gt_sets(RECORDINGS, num_gts=0)


def test_gt_list_round_trip(tmp_path) -> None:
    draw = draw_gt_sets(RECORDINGS, seed=5, bidirectional=True)
    path = tmp_path / "gts.json"
    write_gt_list(path, draw, "val")
    doc = json.loads(path.read_text())
    assert doc["format"] == GT_LIST_FORMAT and doc["seed"] == 5 and doc["bidirectional"] is True
    assert read_gt_list(path, RECORDINGS, "val") == draw.sets
    # the baseline script's own sample_ids shape (a bare list, or under "sample_ids") replays too
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(doc["samples"]))
    assert read_gt_list(bare, RECORDINGS, "val") == draw.sets
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"sample_ids": doc["samples"], "config": {}}))
    assert read_gt_list(wrapped, RECORDINGS, "val") == draw.sets
    check_gt_sets_cover(draw.sets, [s.sample for s in draw.sets], path)
    with pytest.raises(ReactError, match="sample 0 is"):
        check_gt_sets_cover(draw.sets[::-1], [s.sample for s in draw.sets], path)
    with pytest.raises(ReactError, match="lists 3 samples"):
        check_gt_sets_cover(draw.sets[:3], [s.sample for s in draw.sets], path)


def _one(tmp_path, entry, name="bad.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"samples": [entry]}))
    with pytest.raises(ReactError) as info:
        read_gt_list(path, RECORDINGS, "val")
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_gt_list_errors_are_one_line(tmp_path) -> None:
    good = {"input": "speaker/session2/c00", "target": "listener/session2/c00", "gts": ["listener/session2/c01"]}
    assert "GT 1 listener/session2/nope does not exist in the val split" in _one(
        tmp_path, {**good, "gts": ["listener/session2/c00", "listener/session2/nope"]}
    )
    assert "input speaker/session9/c00 does not exist" in _one(tmp_path, {**good, "input": "speaker/session9/c00"})
    assert "not the input's partner" in _one(tmp_path, {**good, "target": "listener/session2/c01"})
    assert "is a speaker, the target is a listener" in _one(tmp_path, {**good, "gts": ["speaker/session2/c01"]})
    assert "is not '<speaker|listener>/<session>/<stem>'" in _one(tmp_path, {**good, "gts": ["session2/c01"]})
    assert "unknown key 'gt'" in _one(tmp_path, {**good, "gt": []})
    assert "no 'gts'" in _one(tmp_path, {"input": good["input"], "target": good["target"]})
    assert "non-empty list" in _one(tmp_path, {**good, "gts": []})
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps([good, good]))
    with pytest.raises(ReactError, match="listed twice"):
        read_gt_list(twice, RECORDINGS, "val")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ReactError, match="not a JSON GT list"):
        read_gt_list(broken, RECORDINGS, "val")
    with pytest.raises(ReactError, match="GT list not found"):
        read_gt_list(tmp_path / "missing.json", RECORDINGS, "val")
