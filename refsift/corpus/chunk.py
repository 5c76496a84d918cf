"""`Chunk`: a slice of one task's input as it flows through the scoring transforms.

ReadCorpus cuts each task into chunks of about `chunk_size` bytes of input; TokenizeWindows
adds the windows, each ScoreTokens one role's losses, SummarizeExamples the examples rows,
and WriteShards writes the chunk's three shards and its completion marker. A chunk is the
unit of memory (everything in flight on a worker is one chunk) and of resumption (a
committed chunk is never scored again). Documents are per-document Python dicts; tokens
are numpy arrays, never Python lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from refsift.kernels.windows import Windows


@dataclass
class Chunk:
    """Args:
    task, index: which task, and which chunk of it (names its shards and marker).
    final: the task's last chunk.
    read: input records read into this chunk (documents plus rejections).
    documents: {doc_id, source, text, prompt, messages, input, row} per document;
      TokenizeWindows adds `n_bytes` and replaces `text` with what the model reads.
    rejected: `rejected` rows.
    windows: the documents' windows, with each role's losses once scored.
    document_nll: role -> (total nats, scored tokens) per document, for a role whose model
      reads its own tokens (a ladder model with another tokenizer: `ScoreDocuments`).
    tables: table name -> the chunk's rows of it, set by the step that makes them
      (`examples` by SummarizeExamples or ClassifyDocuments; `documents` and `bands` by
      MinHashDocuments); `tokens` and `rejected` are made from the chunk as it is committed.
    """

    task: int
    index: int
    final: bool
    read: int = 0
    documents: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    windows: Windows | None = None
    document_nll: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    tables: dict[str, pa.Table] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.task:06d}-{self.index:06d}"

    def tokens_table(self, schema: pa.Schema) -> pa.Table:
        """The `tokens` shard: one row per window, list columns built from the flat arrays."""
        w = self.windows
        offsets = pa.array(w.offsets.astype(np.int32))

        def lists(values, mask=None):
            return pa.ListArray.from_arrays(offsets, pa.array(values, mask=mask))

        doc_ids = np.asarray([d["doc_id"] for d in self.documents], dtype=object)
        columns = {
            "doc_id": pa.array(doc_ids[w.doc], type=pa.string()),
            "window": pa.array(w.window),
            "token_start": pa.array(w.token_start),
            "token_ids": lists(w.token_ids),
            "char_start": lists(w.char_start),
            "char_end": lists(w.char_end),
        }
        for role, nll in w.nll.items():
            columns[f"nll_{role}"] = lists(nll, np.isnan(nll))
        return pa.Table.from_pydict({name: columns[name] for name in schema.names}, schema=schema)
