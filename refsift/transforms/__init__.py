"""Beam transforms, one public class per module, composable into a user's own pipeline.

documents = p | ReadCorpus(inputs=["data/*.jsonl"])
windows = documents["documents"] | TokenizeWindows(tokenizer="smollm2-135m")
scored = windows["windows"] | ScoreTokens(role="model", model="smollm2-135m")
"""

from refsift.transforms.read_corpus import Fields, ReadCorpus
from refsift.transforms.score_tokens import ScoreTokens
from refsift.transforms.summarize_examples import SummarizeExamples
from refsift.transforms.tokenize_windows import TokenizeWindows
from refsift.transforms.write_shards import WriteShards

__all__ = ["Fields", "ReadCorpus", "ScoreTokens", "SummarizeExamples", "TokenizeWindows", "WriteShards"]
