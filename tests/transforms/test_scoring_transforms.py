"""The scoring transforms on their own, with a tiny model: TokenizeWindows -> ScoreTokens ->
SummarizeExamples give each document the mean loss that a plain forward pass over its
tokens gives; LabelTokens labels the top excess-loss tokens of the chosen documents only."""

import math

import apache_beam as beam
import torch
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to
from transformers import AutoModelForCausalLM, AutoTokenizer

from refsift.corpus.chunk import Chunk
from refsift.corpus.records import to_document
from refsift.transforms.label_tokens import LabelTokens, TokenRule
from refsift.transforms.score_documents import ScoreDocuments
from refsift.transforms.score_tokens import ScoreTokens
from refsift.transforms.summarize_examples import SummarizeExamples
from refsift.transforms.tokenize_windows import TokenizeWindows
from tests.conftest import held_out

IGNORE = -100


def documents():
    texts = held_out("prose", 2) + held_out("code", 1)
    parsed = [{"id": f"d{i}", "source": None, "text": t[:300], "prompt": None, "messages": None}
              for i, t in enumerate(texts)]  # fmt: skip
    return [to_document(p, "prose.jsonl", i) for i, p in enumerate(parsed)]


def plain_nll(model_dir: str, text: str, reduction: str = "mean") -> float:
    """A document's loss (mean per token, or total) by a plain forward pass: the prefix token
    (BOS, else EOS) then the text, every text token predicted."""
    tokenizer, model = AutoTokenizer.from_pretrained(model_dir), AutoModelForCausalLM.from_pretrained(model_dir)
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id
    ids = torch.tensor([[prefix, *tokenizer(text).input_ids]])
    with torch.no_grad():
        logits = model.eval()(ids).logits[0, :-1]
    return torch.nn.functional.cross_entropy(logits.float(), ids[0, 1:], reduction=reduction).item()


def test_a_documents_mean_loss_is_a_plain_forward_pass(prose_model):
    docs = documents()
    expected = {d["doc_id"]: plain_nll(prose_model, d["text"]) for d in docs}
    with Pipeline() as p:
        chunk = Chunk(task=0, index=0, final=True, read=len(docs), documents=docs)
        rows = (
            p
            | beam.Create([chunk])
            | TokenizeWindows(tokenizer=prose_model, max_length=512, context=64)
            | ScoreTokens(role="model", model=prose_model, max_length=512, device="cpu")
            | SummarizeExamples(roles=["model"])
            | beam.FlatMap(lambda c: c.tables["examples"].to_pylist())
        )
        close = rows | beam.Map(
            lambda r: (r["doc_id"], math.isclose(r["nll_model"], expected[r["doc_id"]], rel_tol=1e-4))
        )
        assert_that(close, equal_to([(d, True) for d in expected]))


def test_score_documents_totals_a_models_loss_with_its_own_tokenizer(prose_model, foreign_model):
    docs = documents()
    expected = {d["doc_id"]: plain_nll(foreign_model, d["text"], "sum") for d in docs}
    with Pipeline() as p:
        chunk = Chunk(task=0, index=0, final=True, read=len(docs), documents=docs)
        totals = (
            p
            | beam.Create([chunk])
            | ScoreDocuments(role="ladder2", model=foreign_model, max_length=512, device="cpu")
            | beam.FlatMap(lambda c: zip([d["doc_id"] for d in c.documents], c.document_nll["ladder2"][0].tolist()))
            | beam.Map(lambda kv: (kv[0], math.isclose(kv[1], expected[kv[0]], rel_tol=1e-4)))
        )
        assert_that(totals, equal_to([(d, True) for d in expected]))


def test_label_tokens_labels_the_top_excess_tokens_of_chosen_documents(prose_model):
    window = {"doc_id": "a", "window": 0, "token_start": 0, "token_ids": [5, 6, 7, 8, 9],
              "nll_model": [None, 1.0, 2.0, 3.0, 4.0], "nll_reference": [None, 1.0, 0.5, 3.5, 1.0]}  # fmt: skip
    # excess: -, 0, 1.5, -0.5, 3.0 -> the top half of the 4 scored positions: 4 and 2
    with Pipeline() as p:
        chosen = p | "Chosen" >> beam.Create([("a", ("code", 2))])
        rows = (
            p
            | beam.Create([window, {**window, "doc_id": "b"}])
            | LabelTokens(
                rule=TokenRule(mode="excess", ratio=0.5), chosen=beam.pvalue.AsDict(chosen), tokenizer=prose_model
            )  # fmt: skip
            | beam.Map(lambda r: (r["doc_id"], r["source"], tuple(r["labels"])))
        )
        labels = (IGNORE, IGNORE, 7, IGNORE, 9)
        assert_that(rows, equal_to([("a", "code", labels), ("a", "code", labels)]))  # chosen twice: two rows
