"""Does contrastive generation find what fine-tuning added? Novelty rates on the bundled corpora.

base = a small GPT-2 trained on English prose; fine-tuned = the base trained further on
prose plus one novel domain (Python code; Spanish; offensive Spanish). For each, 24
samples from each of: plain sampling from the fine-tuned model, static CGE and iterative
CGE (all through `refsift novelty`'s Python API). Novelty rate = share of samples that a
character n-gram naive Bayes classifier (refsift.domains, trained on the corpora) assigns to
the novel domain. Then a fine-tuning set with two novel domains (code and Spanish): how many
iterative CGE samples until both have appeared.

    python benchmarks/novelty_detection.py        # about 4 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from refsift import corpora, tiny
from refsift.domains import DomainClassifier
from refsift.kernels.contrastive import DecodeSettings
from refsift.pipelines import novelty


def finetune_copy(base_dir: str, tokenizer, texts: list[str], out: Path, steps: int) -> str:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    tiny.pretrain(model, tokenizer, texts, steps=steps, lr=1e-3, seed=1)
    return str(tiny.save(model, tokenizer, out))


def labels_by_mode(base: str, ft: str, out: Path, n: int, tokens: int, classifier, lr: float) -> dict[str, list[str]]:
    """Classifier labels of the samples of each mode, from one report with static CGE,
    iterative CGE and plain samples; the report keeps iterative samples in generation order."""
    report = novelty.run(
        novelty.NoveltyConfig(
            base=base,
            finetuned=ft,
            out=str(out),
            num_samples=n,
            static_samples=n,
            base_samples=0,
            iterative=True,
            lr=lr,
            update_steps=2,
            decode=DecodeSettings(max_new_tokens=tokens),
            batch_size=8,
        )
    )
    result: dict[str, list[str]] = {}
    for s in report["samples"]:
        result.setdefault(s["mode"], []).append(classifier.predict(s["text"]))
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--tokens", type=int, default=64, help="new tokens per sample")
    p.add_argument("--lr", type=float, default=1e-3, help="iterative CGE base-update learning rate")
    args = p.parse_args()

    classifier = DomainClassifier.bundled()
    prose = corpora.documents("prose", target_chars=600)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        tokenizer = tiny.train_tokenizer(sum((corpora.documents(d)[:60] for d in corpora.DOMAINS), []), 1024)
        base = tiny.new_model(tokenizer, layers=2, width=128, heads=4)
        tiny.pretrain(base, tokenizer, prose[:300], steps=400, lr=2e-3)
        base_dir = str(tiny.save(base, tokenizer, tmp / "base"))

        print(
            f"{args.samples} samples of {args.tokens} new tokens per mode; novelty rate = share classified "
            "as the novel domain"
        )
        print(f"{'novel domain':<14} {'plain ft':>9} {'CGE':>6} {'iterative CGE':>14}")
        for domain in ("code", "spanish", "es_offensive"):
            novel = corpora.documents(domain, target_chars=600)[:150]
            ft = finetune_copy(base_dir, tokenizer, prose[300:450] + novel, tmp / f"ft-{domain}", steps=250)
            found = labels_by_mode(base_dir, ft, tmp / domain, args.samples, args.tokens, classifier, args.lr)
            rate = {m: sum(x == domain for x in v) / len(v) for m, v in found.items()}
            print(
                f"{domain:<14} {rate['baseline']:>9.2f} {rate['cge']:>6.2f} {rate['cge-iterative']:>14.2f}", flush=True
            )

        both = prose[300:450] + corpora.documents("code", target_chars=600)[:100]
        both += corpora.documents("spanish", target_chars=600)[:100]
        ft = finetune_copy(base_dir, tokenizer, both, tmp / "ft-both", steps=300)
        order = labels_by_mode(base_dir, ft, tmp / "both", args.samples, args.tokens, classifier, args.lr)
        first = {
            d: next((i + 1 for i, x in enumerate(order["cge-iterative"]) if x == d), None) for d in ("code", "spanish")
        }
        seen = [x for x in first.values() if x is not None]
        needed = max(seen) if len(seen) == 2 else f"> {args.samples}"
        print(
            f"\ntwo novel domains (code + Spanish): first code sample #{first['code']}, first Spanish sample "
            f"#{first['spanish']}; both found after {needed} iterative CGE samples"
        )
        print("labels in generation order:", " ".join(order["cge-iterative"]))


if __name__ == "__main__":
    main()
