"""The HLO collective parser of the sharding tests (:mod:`tests.hlo_collectives`) on
hand-written instructions in the forms XLA prints: tuple results of combined collectives,
async ``-start``/``-done`` pairs, the generic ``async-start`` wrapper, every collective opcode.
The sizes are counted by hand."""

from __future__ import annotations

import pytest

from tests.hlo_collectives import collectives, full_layer_collectives, oversized_gathers

MODULE = """\
HloModule jit_update, entry_computation_layout={(f32[40,13]{1,0})->f32[40,52]{1,0}}

%wrapped_all_gather (param: f32[40,13]) -> f32[40,52] {
  %param = f32[40,13]{1,0} parameter(0)
  ROOT %all-gather.7 = f32[40,52]{1,0} all-gather(%param), channel_id=9, replica_groups={{0,1,2,3}}, dimensions={1}
}

ENTRY %main.1 (p: f32[40,13]) -> f32[40,52] {
  %p = f32[40,13]{1,0} parameter(0)
  %all-gather-start = (f32[9,40]{1,0}, f32[36,40]{1,0}) all-gather-start(f32[9,40]{1,0} %q), channel_id=1, replica_groups={{0,1,2,3}}, dimensions={0}, use_global_device_ids=true
  %all-gather-done = f32[36,40]{1,0} all-gather-done((f32[9,40]{1,0}, f32[36,40]{1,0}) %all-gather-start)
  %all-reduce-start = (f32[256]{0}, s32[]) all-reduce-start(f32[256]{0} %h, s32[] %c), channel_id=2, replica_groups={{0,1}}, to_apply=%add
  %all-reduce-done = (f32[256]{0}, s32[]) all-reduce-done((f32[256]{0}, s32[]) %all-reduce-start)
  %all-reduce.3 = (f32[40]{0}, f32[40]{0}) all-reduce(%s1, %s2), channel_id=3, replica_groups=mesh['axis_0'=4,'axis_1'=2], to_apply=%add
  %collective-permute-start = (f32[8]{0}, f32[8]{0}, u32[], u32[]) collective-permute-start(f32[8]{0} %x), source_target_pairs={{0,1},{1,0}}
  %collective-permute-done = f32[8]{0} collective-permute-done(%collective-permute-start)
  %all-to-all = (f32[4,8]{1,0}, f32[4,8]{1,0}) all-to-all(f32[4,8]{1,0} %x, f32[4,8]{1,0} %y), replica_groups={{0,1}}
  %reduce-scatter = f32[16]{0} reduce-scatter(f32[64]{0} %z), replica_groups={{0,1,2,3}}, dimensions={0}, to_apply=%add
  %combined = (bf16[2080]{0}, f32[3]{0}) all-gather(%a, %b), replica_groups={{0,1}}, dimensions={0}
  %async-start = ((f32[40,13]{1,0}), f32[40,52]{1,0}, s32[]) async-start(%p), calls=%wrapped_all_gather
  %fusion.2 = f32[40,52]{1,0} fusion(%async-done), kind=kLoop, calls=%fused_all_gather_copy
  ROOT %async-done = f32[40,52]{1,0} async-done(%async-start), calls=%wrapped_all_gather
}
"""


def test_every_collective_parsed_with_its_result_sizes():
    found = {c.name: (c.op, c.phase, c.sizes) for c in collectives(MODULE)}
    assert found == {
        "all-gather.7": ("all-gather", "", (2080,)),  # inside the async wrapper
        "all-gather-start": ("all-gather", "-start", (360, 1440)),
        "all-gather-done": ("all-gather", "-done", (1440,)),
        "all-reduce-start": ("all-reduce", "-start", (256, 1)),
        "all-reduce-done": ("all-reduce", "-done", (256, 1)),
        "all-reduce.3": ("all-reduce", "", (40, 40)),
        "collective-permute-start": ("collective-permute", "-start", (8, 8, 1, 1)),
        "collective-permute-done": ("collective-permute", "-done", (8,)),
        "all-to-all": ("all-to-all", "", (32, 32)),
        "reduce-scatter": ("reduce-scatter", "", (16,)),
        "combined": ("all-gather", "", (2080, 3)),
    }


def test_oversized_gathers_finds_tuple_async_and_wrapped_gathers():
    names = sorted(c.name for c in oversized_gathers(MODULE, 1024))
    assert names == ["all-gather-done", "all-gather-start", "all-gather.7", "combined"]
    # at 1440 only the 2080-element gathers (the wrapped one and the tuple) stay
    assert sorted(c.name for c in oversized_gathers(MODULE, 1440)) == ["all-gather.7", "combined"]
    assert oversized_gathers(MODULE, 2080) == []


def test_full_layer_collectives_include_all_reduces():
    # a 256-weight layer "gathered" as an all-reduce of a zero-padded buffer is found too
    assert sorted(c.name for c in full_layer_collectives(MODULE, {256})) == ["all-reduce-done", "all-reduce-start"]
    assert full_layer_collectives(MODULE, {1000}) == []


def test_unparsed_collective_line_is_an_error():
    with pytest.raises(ValueError, match="unparsed collective"):
        collectives("  weird all-gather(%x)\n")
    with pytest.raises(ValueError, match="unparsed collective"):
        collectives("  %a = f32[2]{0} all-gather(%x), also all-reduce(%y)\n")
