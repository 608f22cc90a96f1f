"""Chunk boundaries of a fan-out (domain.positions.ChunkBoundaries): from ids
seen in any order, the same sorted boundaries, covering every id, cutting
chunks of about the size asked for."""

from __future__ import annotations

import bisect
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.positions import ChunkBoundaries

ACCOUNT_IDS = st.lists(st.text(min_size=1, max_size=12), unique=True, max_size=300)


def cut(ids: list[str], every: int) -> list[str]:
    boundaries = ChunkBoundaries(every)
    for account_id in ids:
        boundaries.see(account_id)
    return boundaries.boundaries()


def chunk_sizes(ids: list[str], marks: list[str]) -> list[int]:
    sizes = Counter(bisect.bisect_right(marks, account_id) - 1 for account_id in ids)
    return [sizes[index] for index in range(len(marks))]


@given(ACCOUNT_IDS, st.integers(1, 50), st.randoms())
def test_the_same_ids_in_any_order_give_the_same_boundaries_covering_them(
    ids: list[str], every: int, order: object
) -> None:
    marks = cut(ids, every)
    shuffled = list(ids)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    assert cut(shuffled, every) == marks
    assert marks == sorted(set(marks))
    assert (marks[:1] == [""]) == bool(ids)
    assert sum(chunk_sizes(ids, marks)) == len(ids)  # every id in exactly one chunk


@given(ACCOUNT_IDS, st.integers(1, 8))
def test_chunks_are_exact_up_to_eight_accounts(ids: list[str], every: int) -> None:
    sizes = chunk_sizes(ids, cut(ids, every))
    assert all(size == every for size in sizes[:-1])
    assert not sizes or 0 < sizes[-1] <= every


@pytest.mark.parametrize("every", [250, 5_000])
def test_large_chunks_are_about_the_size_asked_for(every: int) -> None:
    ids = [f"ACC-{n:07d}" for n in range(40 * every)]
    sizes = chunk_sizes(ids, cut(ids, every))
    assert 0.7 * every <= sum(sizes) / len(sizes) <= 1.3 * every
    assert max(sizes) <= 3 * every


def test_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every"):
        ChunkBoundaries(0)
