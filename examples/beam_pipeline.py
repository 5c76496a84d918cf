"""Composing refsift's transforms into your own Beam pipeline.

Scores a JSONL corpus under one model and keeps, per document, the share of tokens whose
loss is above 5 nats (a rough "surprise" filter), written as JSON lines. Runs on the
DirectRunner here; pass Dataflow options on the command line to run it there.

    python examples/beam_pipeline.py --input 'refsift/data/sample/*.jsonl.gz' --model smollm2-135m --out /tmp/surprise
"""

import argparse
import json

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from refsift.transforms import ReadCorpus, ScoreTokens, TokenizeWindows


def surprise(window: dict, threshold: float = 5.0) -> dict:
    losses = [x for x in window["nll_model"] if x is not None]
    return {
        "doc_id": window["doc_id"],
        "window": window["window"],
        "surprising": sum(x > threshold for x in losses) / max(1, len(losses)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--input", required=True)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--out", required=True)
    args, beam_args = parser.parse_known_args()
    with beam.Pipeline(options=PipelineOptions(beam_args)) as p:
        read = p | "ReadCorpus" >> ReadCorpus(inputs=[args.input])
        windows = read["documents"] | "TokenizeWindows" >> TokenizeWindows(tokenizer=args.model, max_length=256)
        (
            windows["windows"]
            | "ScoreTokens" >> ScoreTokens(role="model", model=args.model)
            | "Surprise" >> beam.Map(surprise)
            | "ToJson" >> beam.Map(json.dumps)
            | "Write" >> beam.io.WriteToText(args.out, ".jsonl")
        )
        read["rejected"] | "CountRejected" >> beam.combiners.Count.Globally() | beam.Map(print)


if __name__ == "__main__":
    main()
