"""The plain compute kernels: window planning and per-token NLL."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from refsift.kernels.nll import token_nll
from refsift.kernels.training import causal_lm_loss
from refsift.kernels.windows import plan_windows


@given(n=st.integers(0, 400), max_length=st.integers(2, 64), data=st.data())
def test_every_token_from_the_first_scored_is_scored_exactly_once(n, max_length, data):
    context = data.draw(st.integers(1, max_length - 1))
    first = data.draw(st.integers(1, max(1, n)))  # 1 after a prefix; later after a prompt
    windows = plan_windows(n, max_length, context, first=first)
    scored = [w.start + i for w in windows for i in range(w.score_from, w.end - w.start)]
    assert sorted(scored) == list(range(first, n))
    for w in windows:
        assert 0 < w.end - w.start <= max_length
        assert w.score_from >= min(context, w.start + w.score_from)  # enough left context
        if w.index > 0:  # left context is the tail of the previous window
            assert w.start == windows[w.index - 1].end - context and w.score_from == context
    if windows and n - first < max_length - context:  # what fits in one window gets all the context it can
        assert len(windows) == 1 and windows[0].start == max(0, min(n - max_length, first - context))


def test_plan_windows_rejects_zero_context():
    with pytest.raises(ValueError):
        plan_windows(10, 8, 0)


def reference_nll(model, ids):
    logp = torch.log_softmax(model(input_ids=ids).logits.float(), dim=-1)
    return -logp[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]


@pytest.fixture(scope="module")
def model(tokenizer):
    from refsift.demo import tiny

    return tiny.new_model(tokenizer, seed=3)


def test_token_nll_matches_full_log_softmax(model):
    ids = torch.randint(0, model.config.vocab_size, (3, 20))
    nll = token_nll(model, ids)
    assert torch.isnan(nll[:, 0]).all()
    torch.testing.assert_close(nll[:, 1:], reference_nll(model, ids), atol=1e-5, rtol=0)


def test_token_nll_chunking_and_padding_do_not_change_losses(model):
    ids = torch.randint(0, model.config.vocab_size, (2, 16))
    mask = torch.ones_like(ids)
    mask[1, 10:] = 0  # second row is 10 tokens long, right-padded
    tiny_chunks = token_nll(model, ids, mask, chunk_bytes=4 * model.config.vocab_size * 3)  # 3 positions a chunk
    assert torch.isnan(tiny_chunks[1, 10:]).all()
    torch.testing.assert_close(tiny_chunks[0, 1:], reference_nll(model, ids[:1])[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(tiny_chunks[1, 1:10], reference_nll(model, ids[1:, :10])[0], atol=1e-5, rtol=0)


def test_causal_lm_loss_is_mean_over_labelled_tokens_only():
    logits = torch.randn(1, 5, 7)
    labels = torch.tensor([[3, 1, -100, 4, -100]])
    logp = torch.log_softmax(logits, -1)
    by_hand = -(logp[0, 0, 1] + logp[0, 2, 4]) / 2  # labels at 1 and 3, predicted from 0 and 2
    assert math.isclose(causal_lm_loss(logits, labels).item(), by_hand.item(), rel_tol=1e-6)
