"""Token selection invariants, budget arithmetic and mixture plans (no Beam, no models)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refsift.kernels import selection

losses = st.lists(st.one_of(st.none(), st.floats(0, 20, allow_nan=False)), min_size=1, max_size=80)


@given(model=losses, data=st.data(), ratio=st.floats(0.01, 1.0), shift=st.floats(-5, 5, allow_nan=False))
def test_top_ratio_exact_count_scored_only_and_shift_invariant(model, data, ratio, shift):
    reference = [None if m is None else data.draw(st.floats(0, 20, allow_nan=False)) for m in model]
    chosen = selection.top_ratio(selection.excess(model, reference), ratio)
    n_scored = sum(m is not None for m in model)
    assert sum(chosen) == math.ceil(ratio * n_scored - 1e-9)
    assert not any(c and m is None for c, m in zip(chosen, model))
    shifted = selection.excess(
        [None if m is None else m + shift for m in model], [None if r is None else r + shift for r in reference]
    )
    # Adding a constant to both losses leaves excess (and so the choice) unchanged up to float rounding,
    # as long as rounding makes no tie (1e-146 + 1 - 1 is 0, which then ties with a 0 before it).
    exact = selection.excess(model, reference)
    distinct = len(set(exact)) == len(exact) and len(set(shifted)) == len(shifted)
    if all(a is None or abs(a - b) < 1e-9 for a, b in zip(exact, shifted)) and distinct:
        assert selection.top_ratio(shifted, ratio) == chosen


def test_top_ratio_picks_the_largest_excess():
    assert selection.top_ratio([None, 0.5, 3.0, -1.0, 2.0], 0.5) == [False, False, True, False, True]


def test_random_ratio_is_reproducible_and_exact():
    scores = [None] + [1.0] * 50
    a = selection.random_ratio(scores, 0.3, seed=7, key="d:0")
    assert a == selection.random_ratio(scores, 0.3, seed=7, key="d:0") != selection.random_ratio(scores, 0.3, 8, "d:0")
    assert sum(a) == 15 and not a[0]


def test_labels_mask_unselected_tokens():
    assert selection.labels([5, 6, 7], [False, True, False]) == [-100, 6, -100]


@pytest.mark.parametrize(
    "text, kind, limit",
    [("10%", "documents", 10), ("2.5%", "documents", 3), ("2000tok", "tokens", 2000), ("7", "documents", 7)],
)
def test_budget_arithmetic(text, kind, limit):
    assert selection.Budget.parse(text).limit(total_documents=100) == (kind, limit)


@pytest.mark.parametrize("text", ["0%", "150%", "abc", "-3", "1.5", "0tok"])
def test_bad_budgets_are_refused(text):
    with pytest.raises(ValueError):
        selection.Budget.parse(text)


def test_fill_takes_best_first_and_never_exceeds_the_limit():
    candidates = [(0.1, "a", 5), (0.9, "b", 4), (0.5, "c", 3), (0.7, "d", 2)]
    assert [c[1] for c in selection.fill(candidates, 9)] == ["b", "d", "c"]
    assert [c[1] for c in selection.fill(candidates, 5)] == ["b"]  # stops at the first misfit


def test_mix_parsing():
    assert selection.parse_mix("code=0.3,prose=0.7") == {"code": 0.3, "prose": 0.7}
    for bad in ("code=0.3,prose=0.3", "code", "code=x,prose=1"):
        with pytest.raises(ValueError):
            selection.parse_mix(bad)


def test_plan_mixture_renormalises_or_upsamples_a_short_source():
    available = {"code": 100, "prose": 10_000, "math": 10_000}
    shares = {"code": 0.5, "prose": 0.25, "math": 0.25}
    renorm = selection.plan_mixture(available, shares, 1000, upsample=False)
    assert renorm["code"].budget == 100 and "exhausted" in renorm["code"].note
    assert renorm["prose"].budget == renorm["math"].budget == 450
    up = selection.plan_mixture(available, shares, 1000, upsample=True)
    assert up["code"].budget == 100 and up["code"].repeats == 5.0 and up["prose"].budget == 250


def test_temperature_flattens_shares():
    available = {"a": 900, "b": 100}
    assert selection.temperature_shares(available, 1.0) == pytest.approx({"a": 0.9, "b": 0.1})
    assert selection.temperature_shares(available, 1e9) == pytest.approx({"a": 0.5, "b": 0.5})


def test_mixture_notes_say_renormalised_only_when_a_source_ran_short():
    from refsift.kernels.selection import plan_mixture

    enough = plan_mixture({"a": 1000, "b": 1000, "c": 1000}, {"a": 0.5, "b": 0.3, "c": 0.2}, 1000, upsample=False)
    assert {s: p.note for s, p in enough.items()} == {"a": "filled", "b": "filled", "c": "filled"}
    short = plan_mixture({"a": 1000, "b": 1000, "c": 50}, {"a": 0.5, "b": 0.3, "c": 0.2}, 1000, upsample=False)
    assert short["c"].note.startswith("exhausted")
    assert short["a"].note == short["b"].note == "filled (renormalised)"
    assert short["a"].budget + short["b"].budget + short["c"].budget == 1000
