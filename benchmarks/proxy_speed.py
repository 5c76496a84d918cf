"""What a proxy's training costs around the model: refsift's loop (`kernels.training.train`,
as TrainProxies runs it: collated rows, labels honoured, warmup and cosine schedule,
gradient clipping) against a plain PyTorch loop over the same model, batches and steps.
Rounds alternate, and the median is reported.

    python benchmarks/proxy_speed.py [--steps 40] [--rounds 3] [--proxy 2x128]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from refsift.demo import corpora, tiny
from refsift.kernels import training
from refsift.kernels.proxy import heads_for, new_model, parse_proxy


def plain(model, batches, lr: float) -> None:
    """The loop anyone would write: AdamW, forward, mean token loss, backward, step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for batch in batches:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), batch["input_ids"][:, 1:].flatten())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--proxy", default="2x128")
    p.add_argument("--block", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    args = p.parse_args()
    texts = sum((corpora.documents(d)[:60] for d in ("prose", "code", "math")), [])
    tokenizer = tiny.train_tokenizer(texts, vocab_size=1024)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    rows = [{"input_ids": b} for b in training.pack(ids, args.block, tokenizer.eos_token_id)]
    rows = (rows * (args.steps * args.batch_size // len(rows) + 1))[: args.steps * args.batch_size]
    batches = [training.collate(rows[i : i + args.batch_size]) for i in range(0, len(rows), args.batch_size)]
    tokens = sum(int(b["attention_mask"].sum()) for b in batches)
    layers, width = parse_proxy(args.proxy)
    times: dict[str, list[float]] = {"refsift": [], "plain": []}
    for _ in range(args.rounds):
        for name in times:
            model = new_model(tokenizer, layers=layers, width=width, heads=heads_for(width), positions=args.block)
            started = time.perf_counter()
            if name == "plain":
                plain(model, batches, 2e-3)
            else:
                training.train(model, iter(batches), steps=len(batches), lr=2e-3, warmup=4, schedule="cosine")
            times[name].append(time.perf_counter() - started)
    speed = {name: tokens / statistics.median(t) for name, t in times.items()}
    print(f"{args.proxy} proxy, {len(batches)} steps of {args.batch_size} x {args.block} tokens, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} rounds")  # fmt: skip
    for name, value in speed.items():
        print(f"  {name:<8} {value:>9,.0f} tokens/s")
    print(f"  refsift / plain = {speed['refsift'] / speed['plain']:.2f}")


if __name__ == "__main__":
    main()
