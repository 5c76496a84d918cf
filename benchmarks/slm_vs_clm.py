"""A small-scale replication of Rho-1's claim: training on the tokens with the highest
excess loss (selective language modeling, SLM) beats training on all tokens (causal LM,
CLM) and on a random subset of the same size, on the target domain.

Target domain: math (as in Rho-1's math setting), from the bundled corpora.
- reference model: trained on clean math text;
- base model: trained on a general mix (English prose and drama, German, Python code);
- noisy corpus: unseen math problems mixed with general text and web-like junk (random
  character strings, repeated boilerplate);
- the base continues training for the same number of steps on (a) all tokens, (b) the top
  60% of tokens by excess loss (nll_base - nll_reference), (c) a random 60% of tokens;
- reported: held-out math loss and held-out general loss (nats per token), mean and spread
  over seeds.

Everything runs through refsift's own commands (score, select, finetune) via the Python API.

    python benchmarks/slm_vs_clm.py            # about 3 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import tempfile
from pathlib import Path
from types import SimpleNamespace

from refsift.config import FinetuneConfig, ScoreConfig
from refsift.demo import corpora, tiny
from refsift.pipelines import finetune, score, select

GENERAL = ("prose", "drama", "german", "code")


def junk(rng: random.Random, n: int) -> list[str]:
    noise = ["".join(rng.choices(string.ascii_letters + string.digits + "#$%&", k=300)) for _ in range(n // 2)]
    boiler = ["Click here to subscribe! Terms of service apply. " * 6 for _ in range(n - n // 2)]
    return noise + boiler


def mean_nll(model_dir: str, tokenizer, texts: list[str]) -> float:
    import torch
    from transformers import AutoModelForCausalLM

    from refsift.kernels.nll import token_nll

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    total, count = 0.0, 0
    for text in texts:
        ids = torch.tensor([tokenizer(text, add_special_tokens=False)["input_ids"][:256]])
        nll = token_nll(model, ids)[0, 1:]
        total, count = total + nll.sum().item(), count + nll.numel()
    return total / count


def noisy_case(tmp: Path) -> SimpleNamespace:
    """The case: a base model trained on general text, a reference trained on clean math, a
    noisy corpus (math, general text, junk) to select from, and held-out math and general
    documents. The ablation benchmark starts from it too."""
    rng = random.Random(0)
    math_docs = corpora.documents("math", target_chars=600)
    general = {d: corpora.documents(d, target_chars=600) for d in GENERAL}
    ref_train, noisy_math, math_test = math_docs[:60], math_docs[60:140], math_docs[-40:]
    base_train = sum((docs[:150] for docs in general.values()), [])
    noisy_general = sum((docs[150:190] for docs in general.values()), [])
    tokenizer = tiny.train_tokenizer(base_train + ref_train, vocab_size=1024)
    shape = dict(layers=2, width=128, heads=4)
    reference = tiny.new_model(tokenizer, **shape)
    tiny.pretrain(reference, tokenizer, ref_train, steps=300, lr=2e-3)
    base = tiny.new_model(tokenizer, **shape, seed=1)
    tiny.pretrain(base, tokenizer, base_train, steps=400, lr=2e-3)
    corpus = tmp / "noisy.jsonl"
    corpora.write_jsonl(corpus, corpora.numbered(noisy_math + noisy_general + junk(rng, 40), "d"))
    return SimpleNamespace(
        tokenizer=tokenizer,
        ref_dir=str(tiny.save(reference, tokenizer, tmp / "ref")),
        base_dir=str(tiny.save(base, tokenizer, tmp / "base")),
        corpus=corpus,
        counts=(len(noisy_math), len(noisy_general), 40),
        math_test=math_test,
        general_test=sum((docs[-10:] for docs in general.values()), []),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=150, help="continued-training steps for every variant")
    p.add_argument("--ratio", type=float, default=0.6)
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        case = noisy_case(tmp)
        tokenizer, ref_dir, base_dir, corpus = case.tokenizer, case.ref_dir, case.base_dir, case.corpus
        math_test, general_test = case.math_test, case.general_test
        run = str(tmp / "run")
        score.run(
            ScoreConfig(inputs=(str(corpus),), out=run, model=base_dir, reference=ref_dir, max_length=128, context=16)
        )
        print("noisy corpus: {} math, {} general, {} junk documents".format(*case.counts))
        print(
            f"base before training: math {mean_nll(base_dir, tokenizer, math_test):.3f}, "
            f"general {mean_nll(base_dir, tokenizer, general_test):.3f}"
        )

        results: dict[str, list[tuple[float, float]]] = {}
        variants = {
            "(a) all tokens (CLM)": "all",
            f"(b) top {args.ratio:.0%} excess (SLM)": "excess",
            f"(c) random {args.ratio:.0%}": "random",
        }
        for seed in range(args.seeds):
            for name, mode in variants.items():
                mix = str(tmp / f"mix-{mode}-{seed}")
                select.run(
                    select.SelectConfig(
                        run=run, out=mix, tokens=mode, ratio=args.ratio, seed=seed, name=f"{mode}_{seed}"
                    )
                )
                ckpt = str(tmp / f"ckpt-{mode}-{seed}")
                finetune.run(
                    FinetuneConfig(
                        data=mix, model=base_dir, out=ckpt, steps=args.steps, lr=1e-3, batch_size=16, seed=seed
                    )
                )
                results.setdefault(name, []).append(
                    (mean_nll(ckpt, tokenizer, math_test), mean_nll(ckpt, tokenizer, general_test))
                )

    print(
        f"\ncontinued training: {args.steps} steps, batch 16, lr 1e-3, {args.seeds} seeds; held-out loss (nats/token)"
    )
    print(f"{'variant':<26} {'math (target)':>16} {'general':>16}")
    for name, values in results.items():
        cells = []
        for column in zip(*values):
            spread = statistics.stdev(column) if len(column) > 1 else 0.0
            cells.append(f"{statistics.mean(column):.3f} ± {spread:.3f}")
        print(f"{name:<26} {cells[0]:>16} {cells[1]:>16}")


if __name__ == "__main__":
    main()
