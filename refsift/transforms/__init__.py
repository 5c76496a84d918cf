"""Beam transforms, one public class per module, composable into a user's own pipeline.

The scoring transforms pass `refsift.corpus.chunk.Chunk`s, columnar slices of a task's input:

    tasks = p | beam.Create(plan_tasks(["data/*.jsonl"])[0])
    index = tasks | IndexCorpus(fields=Fields())
    chunks = tasks | ReadCorpus(fields=Fields(), first_rows=AsSingleton(index["first_rows"]),
                                duplicates=AsDict(index["duplicates"]))
    scored = chunks | TokenizeWindows(tokenizer="smollm2-135m") | ScoreTokens(role="model", model="smollm2-135m")
"""

from refsift.corpus.records import Fields
from refsift.transforms.commit_chunks import CommitChunks
from refsift.transforms.index_corpus import IndexCorpus
from refsift.transforms.read_corpus import ReadCorpus
from refsift.transforms.score_tokens import ScoreTokens
from refsift.transforms.summarize_examples import SummarizeExamples
from refsift.transforms.tokenize_windows import TokenizeWindows
from refsift.transforms.write_shards import WriteShards

__all__ = [
    "CommitChunks",
    "Fields",
    "IndexCorpus",
    "ReadCorpus",
    "ScoreTokens",
    "SummarizeExamples",
    "TokenizeWindows",
    "WriteShards",
]
