"""Per-document log-likelihoods of `refsift score` (default `--prefix auto`) against
EleutherAI lm-evaluation-harness's `loglikelihood_rolling` on the same documents and model.

Both put the tokenizer's BOS (else EOS) before a document and score every one of its
tokens. Documents that fit one window must agree to float precision. Over several windows,
`--windows rolling` cuts lm-eval's own disjoint windows and must agree as closely; the
default re-fed context differs by design: lm-eval predicts the first token of each block
of `max_length` tokens from one token of context (the last block, right-aligned, from
more), where refsift gives every scored token at least `--context` tokens (64).

Needs `pip install lm_eval` (and `accelerate`); skipped, with that said, where it is missing.

    python benchmarks/lm_eval_compare.py                       # tiny model and SmolLM2-135M
    python benchmarks/lm_eval_compare.py --models tiny
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import common  # noqa: E402


def lm_eval_totals(model_dir: str, texts: list[str], max_length: int) -> list[float]:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model_dir, device="cpu", batch_size=4, max_length=max_length)
    requests = [
        Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=i) for i, text in enumerate(texts)
    ]
    return [float(x) for x in lm.loglikelihood_rolling(requests, disable_tqdm=True)]


def refsift_totals(model_dir: str, corpus: str, out: str, max_length: int, windows: str) -> dict[str, tuple]:
    from refsift import catalog
    from refsift.config import ScoreConfig
    from refsift.pipelines import score

    score.run(ScoreConfig(inputs=(corpus,), out=out, model=model_dir, max_length=max_length, windows=windows))
    rows = catalog.query(out, "SELECT doc_id, nll_model * n_tokens, n_tokens FROM examples")[1]
    return {doc_id: (-total, n) for doc_id, total, n in rows}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["tiny", "smollm2-135m"])
    p.add_argument("--documents", type=int, default=24)
    p.add_argument("--max-length", type=int, default=512)
    args = p.parse_args()
    if importlib.util.find_spec("lm_eval") is None:
        print("lm-evaluation-harness is not installed (pip install lm_eval accelerate): nothing to compare")
        return
    from refsift import models
    from refsift.demo import corpora

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        print(f"max length {args.max_length}; log-likelihood per document (nats), refsift vs lm-eval")
        head = f"{'model':<14} {'documents':<11} {'windows':<8} {'n':>3} {'tokens':>7}"
        print(f"{head} {'max |diff|':>11} {'max rel':>9}")
        for name in args.models:
            spec = common.small_model(tmp / "tiny") if name == "tiny" else models.resolve(name)
            tokenizer = models.load_tokenizer(spec)
            pool = [t for d in common.DOMAINS for t in corpora.documents(d, target_chars=700)]
            joined = ["\n\n".join(pool[i : i + 8]) for i in range(0, len(pool), 8)]  # several windows long
            for label, candidates in (("one window", pool[::7]), ("several", joined)):
                lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in candidates]
                fits = [n < args.max_length if label == "one window" else n > 2 * args.max_length for n in lengths]
                texts = [t for t, ok in zip(candidates, fits) if ok][: args.documents]
                corpus = tmp / f"{name}-{label[:3]}.jsonl"
                corpora.write_jsonl(corpus, corpora.numbered(texts, "d"))
                theirs = lm_eval_totals(spec, texts, args.max_length)
                for windows in ("rolling", "context"):
                    run = str(tmp / f"run-{name}-{label[:3]}-{windows}")
                    ours = refsift_totals(spec, str(corpus), run, args.max_length, windows)
                    pairs = [(ours[f"d-{i}"], t) for i, t in enumerate(theirs)]
                    diff = max(abs(a - t) for (a, _), t in pairs)
                    rel = max(abs(a - t) / abs(t) for (a, _), t in pairs)
                    tokens = sum(n for (_, n), _ in pairs)
                    print(f"{name:<14} {label:<11} {windows:<8} {len(pairs):>3} {tokens:>7} {diff:>11.2e} {rel:>9.2e}")
                    if label == "several" and windows == "context":
                        higher = sum(a > t for (a, _), t in pairs)
                        print(f"{'':<14} refsift's log-likelihood is the higher on {higher} of {len(pairs)} documents")


if __name__ == "__main__":
    main()
