"""Generated tokens per second of the batched, KV-cached contrastive decoder against a naive
loop that re-runs both models over the whole prefix at every step, one sample at a time
(same models, same samples, 256 new tokens, no early stop), and against transformers'
`model.generate` sampling from one model; then the batch size at which the cached decoder's
throughput stops growing on this machine.

    python benchmarks/cge_throughput.py                       # tiny model and SmolLM2-135M
    python benchmarks/cge_throughput.py --models tiny
"""

from __future__ import annotations

import argparse
import time

import torch

from refsift import models
from refsift.demo import corpora, tiny
from refsift.kernels.contrastive import DecodeSettings, generate


def load_pair(name: str):
    if name == "tiny":
        tokenizer = tiny.train_tokenizer(sum((corpora.documents(d)[:30] for d in corpora.DOMAINS), []), 2048)
        ft = tiny.new_model(tokenizer, layers=4, width=256, heads=4, positions=1024, seed=0)
        base = tiny.new_model(tokenizer, layers=4, width=256, heads=4, positions=1024, seed=1)
        return ft, base, tokenizer
    # The same weights twice is fine for speed: the decoder cannot tell.
    return models.load_model(name, device="cpu"), models.load_model(name, device="cpu"), models.load_tokenizer(name)


def rate(ft, base, start: int, n: int, tokens: int, *, cached: bool, batch: int) -> float:
    settings = DecodeSettings(mode="sample", max_new_tokens=tokens)
    produced, started = 0, time.perf_counter()
    for i in range(0, n, batch):
        size = min(batch, n - i)
        out = generate(
            ft, base, [[start]] * size, settings, seeds=list(range(i, i + size)), eos_id=None, use_cache=cached
        )
        produced += sum(len(o.tokens) for o in out)
    return produced / (time.perf_counter() - started)


def generate_rate(model, start: int, n: int, tokens: int) -> float:
    """transformers' own sampling from one model, the same number of tokens per sample."""
    ids = torch.full((n, 1), start, dtype=torch.long)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=True, max_new_tokens=tokens,
                             min_new_tokens=tokens, pad_token_id=start)  # fmt: skip
    return (out.shape[1] - 1) * n / (time.perf_counter() - started)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["tiny", "smollm2-135m"])
    p.add_argument("--tokens", type=int, default=256)
    p.add_argument("--samples", type=int, default=8, help="samples for the cached decoder")
    p.add_argument("--naive-samples", type=int, default=2, help="samples for the naive loop (it is slow)")
    p.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    args = p.parse_args()
    torch.manual_seed(0)
    print(f"{args.tokens} new tokens per sample, {torch.get_num_threads()} CPU threads")
    for name in args.models:
        ft, base, tok = load_pair(name)
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        naive = rate(ft, base, start, args.naive_samples, args.tokens, cached=False, batch=1)
        cached = rate(ft, base, start, args.samples, args.tokens, cached=True, batch=args.samples)
        plain = generate_rate(ft, start, args.samples, args.tokens)
        print(
            f"\n{name}: naive {naive:.1f} tok/s, KV-cached batch {args.samples} {cached:.1f} tok/s, "
            f"ratio {cached / naive:.1f}x; model.generate sampling one model, batch {args.samples}: {plain:.1f} tok/s "
            f"(contrastive decoding runs two models: {cached / plain:.2f} of it)"
        )
        print(f"{'batch':>6} {'tok/s':>8} {'gain':>6}")
        previous = None
        for batch in map(int, args.batch_sizes.split(",")):
            value = rate(ft, base, start, batch, args.tokens, cached=True, batch=batch)
            gain = "" if previous is None else f"{value / previous:.2f}x"
            print(f"{batch:>6} {value:>8.1f} {gain:>6}", flush=True)
            previous = value


if __name__ == "__main__":
    main()
