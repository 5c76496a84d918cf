"""ClassifyDocuments on its own: each document's probability of the label, as fastText's own
`predict` gives it for that document alone."""

import math

import apache_beam as beam
import fasttext
from apache_beam.testing.test_pipeline import TestPipeline as Pipeline
from apache_beam.testing.util import assert_that, equal_to

from refsift.corpus.chunk import Chunk
from refsift.corpus.records import to_document
from refsift.kernels.classifier import FastTextSettings, one_line, train
from refsift.transforms.classify_documents import ClassifyDocuments
from tests.conftest import held_out


def documents(domain, n):
    """Documents 150 on of a domain; the classifier learns from 155 on."""
    parsed = [{"id": f"{domain}{i}", "source": domain, "text": t, "prompt": None, "messages": None}
              for i, t in enumerate(held_out(domain, n))]  # fmt: skip
    return [to_document(p, f"{domain}.jsonl", i) for i, p in enumerate(parsed)]


def test_scores_are_fasttexts_probability_of_the_label(tmp_path):
    lines = [f"__label__code {one_line(t)}" for t in held_out("code", 15, start=155)]
    lines += [f"__label__prose {one_line(t)}" for t in held_out("prose", 15, start=155)]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    train(str(tmp_path / "train.txt"), FastTextSettings(bucket=20_000, epoch=5)).save_model(str(tmp_path / "m.bin"))
    docs = documents("code", 3) + documents("prose", 3)
    model = fasttext.load_model(str(tmp_path / "m.bin"))
    expected = {}
    for d in docs:
        labels, probs = model.predict(one_line(d["text"]), k=-1)
        expected[d["doc_id"]] = float(dict(zip(labels, probs))["__label__code"])
    with Pipeline() as p:
        chunk = Chunk(task=0, index=0, final=True, read=len(docs), documents=docs)
        rows = (
            p
            | beam.Create([chunk])
            | ClassifyDocuments(classifier=str(tmp_path / "m.bin"), label="__label__code")
            | beam.FlatMap(lambda c: c.tables["examples"].to_pylist())
            | beam.Map(
                lambda r: (
                    r["doc_id"],
                    math.isclose(r["classifier_score"], expected[r["doc_id"]], rel_tol=1e-6),
                    r["n_tokens"] == len(r["text"].split()),
                )
            )  # fmt: skip
        )
        assert_that(rows, equal_to([(doc_id, True, True) for doc_id in expected]))
    assert min(expected[f"code{i}"] for i in range(3)) > max(expected[f"prose{i}"] for i in range(3))
