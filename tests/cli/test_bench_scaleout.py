"""The scale-out bench's choice of actions (bench/fanout_scaleout.py): the
action ids it keeps land, under the producer's own partitioner, on the
partitions each worker holds, so that two workers get equal shares of the
fan-out. No figure is measured here."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from bench.fanout_scaleout import PARTITIONS, KeyPicker, partition_of
from commands.ids import new_action_id


def producer_partition(key: str, partitions: int) -> int:
    """Where aiokafka's producer puts a record keyed `key` (its default partitioner)."""
    ids = list(range(partitions))
    return int(DefaultPartitioner()(key.encode(), ids, ids))


def pick(picker: KeyPicker, keys: Iterable[str]) -> list[int]:
    """Offer `keys` until the picker is done; the partitions of the kept ones."""
    for key in keys:
        if picker.done:
            break
        picker.offer(key)
    assert picker.done, picker.wanted
    return [producer_partition(key, picker.partitions) for key in picker.kept]


def action_ids(count: int = 10_000) -> Iterable[str]:
    """Fresh action ids, as `announce` makes them."""
    return (new_action_id() for _ in range(count))


def test_one_worker_holding_every_partition_gets_one_action_on_each() -> None:
    picker = KeyPicker([set(range(PARTITIONS))], PARTITIONS, PARTITIONS)
    partitions = pick(picker, action_ids())
    assert sorted(partitions) == list(range(PARTITIONS))  # distinct, every one
    assert partitions == [partition_of(key, PARTITIONS) for key in picker.kept]


def test_two_workers_of_a_round_robin_split_get_three_actions_on_distinct_partitions() -> None:
    shares = [{0, 2, 4}, {1, 3, 5}]  # round robin over the group's sorted partitions
    partitions = pick(KeyPicker(shares, 6, PARTITIONS), action_ids())
    assert len(set(partitions)) == 6
    assert [sum(p in share for p in partitions) for share in shares] == [3, 3]


def test_an_uneven_split_of_partitions_still_gets_an_even_split_of_actions() -> None:
    # 3 partitions a topic: the round robin gives one member 2 of them, the other 1
    shares = [{0, 2}, {1}]
    on = Counter(pick(KeyPicker(shares, 6, 3), action_ids()))
    assert on == Counter({0: 2, 2: 1, 1: 3}) or on == Counter({0: 1, 2: 2, 1: 3})


def test_a_key_past_its_members_part_is_refused_and_counted() -> None:
    key = new_action_id()
    home = partition_of(key, PARTITIONS)
    picker = KeyPicker([{home}, set(range(PARTITIONS)) - {home}], 2, PARTITIONS)
    assert picker.offer(key) and not picker.done
    assert not picker.offer(key)
    assert picker.kept == [key] and picker.refused == 1 and picker.wanted == {0: 0, 1: 1}


def test_a_group_where_no_member_holds_a_partition_or_two_hold_one_is_refused() -> None:
    with pytest.raises(ValueError, match="no member"):
        KeyPicker([set(), set()], 4, PARTITIONS)
    with pytest.raises(ValueError, match="held twice"):
        KeyPicker([{0, 1}, {1, 2}], 4, PARTITIONS)


@st.composite
def groups(draw: st.DrawFn) -> tuple[int, list[set[int]]]:
    """A topic's partition count and its disjoint shares between 1-4 members
    (some may hold none)."""
    partitions = draw(st.integers(1, 12))
    members = draw(st.integers(1, 4))
    owners = draw(st.lists(st.integers(0, members - 1), min_size=partitions, max_size=partitions))
    return partitions, [{p for p, o in enumerate(owners) if o == m} for m in range(members)]


@given(groups(), st.integers(0, 30))
def test_the_kept_keys_share_the_actions_equally_and_spread_within_a_member(
    group: tuple[int, list[set[int]]], actions: int
) -> None:
    partitions, shares = group
    on = Counter(pick(KeyPicker(shares, actions, partitions), (f"CA-{n}" for n in range(5000))))
    assert sum(on.values()) == actions
    held = [share for share in shares if share]
    per_member = [sum(on[p] for p in share) for share in held]
    assert max(per_member) - min(per_member) <= 1  # equal parts
    assert set(on) <= set().union(*held)  # only partitions some member holds
    for share, part in zip(held, per_member, strict=True):
        most = max(on[p] for p in share)
        assert most <= -(-part // len(share))  # distinct partitions while part ≤ len(share)
