"""The scale-out bench's choice of actions (bench/fanout_scaleout.py): the
action ids it keeps land, under the producer's own partitioner, on the
partitions each worker holds, so that two workers get equal shares of the
fan-out. No figure is measured here."""

from __future__ import annotations

from collections import Counter

import pytest
from aiokafka.partitioner import DefaultPartitioner
from hypothesis import given
from hypothesis import strategies as st

from bench.fanout_scaleout import PARTITIONS, KeyPicker, partition_of, partition_quota
from commands.ids import new_action_id


def producer_partition(key: str, partitions: int) -> int:
    """Where aiokafka's producer puts a record keyed `key` (its default partitioner)."""
    ids = list(range(partitions))
    return int(DefaultPartitioner()(key.encode(), ids, ids))


def pick(quota: Counter[int], partitions: int) -> KeyPicker:
    """Offer fresh action ids (as `announce` makes them) until the quota is met."""
    picker = KeyPicker(quota, partitions)
    for _ in range(10_000):
        if picker.done:
            return picker
        picker.offer(new_action_id())
    raise AssertionError(f"10 000 ids left the quota {picker.quota}")


def test_one_worker_holding_every_partition_gets_one_action_on_each() -> None:
    everything = set(range(PARTITIONS))
    picker = pick(partition_quota([everything], PARTITIONS), PARTITIONS)
    partitions = [producer_partition(key, PARTITIONS) for key in picker.kept]
    assert sorted(partitions) == list(range(PARTITIONS))  # distinct, every one
    assert partitions == [partition_of(key, PARTITIONS) for key in picker.kept]


def test_two_workers_of_a_round_robin_split_get_three_actions_each() -> None:
    shares = [{0, 2, 4}, {1, 3, 5}]  # round robin over the group's sorted partitions
    picker = pick(partition_quota(shares, 6), PARTITIONS)
    partitions = [producer_partition(key, PARTITIONS) for key in picker.kept]
    assert len(set(partitions)) == 6
    assert [sum(p in share for p in partitions) for share in shares] == [3, 3]


def test_an_uneven_split_of_partitions_still_gets_an_even_split_of_actions() -> None:
    # 3 partitions a topic: the round robin gives one member 2 of them, the other 1
    shares = [{0, 2}, {1}]
    quota = partition_quota(shares, 6)
    assert quota == Counter({0: 2, 2: 1, 1: 3})
    picker = pick(quota, 3)
    partitions = [producer_partition(key, 3) for key in picker.kept]
    assert [sum(p in share for p in partitions) for share in shares] == [3, 3]


def test_a_key_on_a_full_partition_is_refused_and_counted() -> None:
    key = new_action_id()
    home = partition_of(key, PARTITIONS)
    picker = KeyPicker(Counter({home: 1}), PARTITIONS)
    assert picker.offer(key) and picker.done
    assert not picker.offer(key)
    assert picker.kept == [key] and picker.refused == 1


def test_a_group_where_no_member_holds_a_partition_or_two_hold_one_is_refused() -> None:
    with pytest.raises(ValueError, match="no member"):
        partition_quota([set(), set()], 4)
    with pytest.raises(ValueError, match="held twice"):
        partition_quota([{0, 1}, {1, 2}], 4)


@st.composite
def assignments(draw: st.DrawFn) -> list[set[int]]:
    """Disjoint shares of 1-12 partitions between 1-4 members (some may hold none)."""
    partitions = draw(st.integers(1, 12))
    members = draw(st.integers(1, 4))
    owners = draw(st.lists(st.integers(0, members - 1), min_size=partitions, max_size=partitions))
    return [{p for p, o in enumerate(owners) if o == m} for m in range(members)]


@given(assignments(), st.integers(0, 40))
def test_the_quota_shares_actions_equally_between_members_and_within_a_member(
    shares: list[set[int]], actions: int
) -> None:
    quota = partition_quota(shares, actions)
    assert sum(quota.values()) == actions
    held = [share for share in shares if share]
    assert set(quota) <= set().union(*held)  # only partitions somebody holds
    per_member = [sum(quota[p] for p in share) for share in held]
    assert max(per_member) - min(per_member) <= 1
    for share in held:
        on_each = [quota[p] for p in share]
        assert max(on_each) - min(on_each) <= 1
