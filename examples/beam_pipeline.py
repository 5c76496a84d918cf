"""Composing refsift's transforms into your own Beam pipeline.

Scores a JSONL corpus under one model and keeps, per window, the share of scored tokens
whose loss is above 5 nats (a rough "surprise" filter), written as JSON lines. The chunks
that flow between the transforms are columnar (`refsift.corpus.chunk.Chunk`): per-token arrays,
not Python lists. Runs on the DirectRunner here; pass Dataflow options on the command line
to run it there.

    python examples/beam_pipeline.py --input 'refsift/data/sample/*.jsonl.gz' --model smollm2-135m --out /tmp/surprise
"""

import argparse
import json

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.pvalue import AsDict, AsSingleton

from refsift.corpus.tasks import plan_tasks
from refsift.transforms import Fields, IndexCorpus, ReadCorpus, ScoreTokens, TokenizeWindows


def surprise(chunk, threshold: float = 5.0):
    """One record per window: the share of its scored tokens above `threshold` nats."""
    w = chunk.windows
    for i in range(len(w)):
        losses = w.nll["model"][w.offsets[i] : w.offsets[i + 1]]
        scored = losses[~np.isnan(losses)]
        yield {
            "doc_id": chunk.documents[w.doc[i]]["doc_id"],
            "window": int(w.window[i]),
            "surprising": float((scored > threshold).mean()) if len(scored) else 0.0,
        }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--out", required=True)
    args, beam_args = parser.parse_known_args()
    tasks, _ = plan_tasks([args.input])
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        tasks = p | "Tasks" >> beam.Create(tasks)
        index = tasks | "IndexCorpus" >> IndexCorpus(fields=Fields())
        chunks = (
            tasks
            | "ReadCorpus"
            >> ReadCorpus(
                fields=Fields(), first_rows=AsSingleton(index["first_rows"]), duplicates=AsDict(index["duplicates"])
            )
            | "TokenizeWindows" >> TokenizeWindows(tokenizer=args.model, max_length=256)
            | "ScoreTokens" >> ScoreTokens(role="model", model=args.model, max_length=256)
        )
        (
            chunks
            | "Surprise" >> beam.FlatMap(surprise)
            | "ToJson" >> beam.Map(json.dumps)
            | "Write" >> beam.io.WriteToText(args.out, ".jsonl")
        )
        (
            chunks
            | "CountRejected" >> beam.Map(lambda chunk: len(chunk.rejected))
            | beam.CombineGlobally(sum)
            | beam.Map(print)
        )


if __name__ == "__main__":
    main()
