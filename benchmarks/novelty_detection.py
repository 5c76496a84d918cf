"""Does contrastive generation find what fine-tuning added? Novelty rates on the bundled corpora.

base = a small GPT-2 trained on English prose; fine-tuned = the base trained further on
prose plus one novel domain (Python code; Spanish; offensive Spanish). For each, 24
samples from each of: plain sampling from the fine-tuned model, static CGE with sampling,
static CGE with the paper's beam sampling (4 beams, never stopping at EOS), and iterative
CGE (all through `refsift novelty`'s Python API). Novelty rate = share of samples that a
character n-gram naive Bayes classifier (refsift.demo.domains, trained on the corpora) assigns to
the novel domain, averaged over seeds. Then a fine-tuning set with two novel domains (code
and Spanish): how many iterative CGE samples until both have appeared.

    python benchmarks/novelty_detection.py        # about 10 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from refsift.demo import corpora, tiny
from refsift.demo.domains import DomainClassifier
from refsift.kernels.contrastive import DecodeSettings
from refsift.pipelines import novelty


def finetune_copy(base_dir: str, tokenizer, texts: list[str], out: Path, steps: int) -> str:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    tiny.pretrain(model, tokenizer, texts, steps=steps, lr=1e-3, seed=1)
    return str(tiny.save(model, tokenizer, out))


def labels_by_mode(
    base: str, ft: str, out: Path, n: int, tokens: int, classifier, lr: float, seed: int = 0, beam: bool = False
) -> dict[str, list[str]]:
    """Classifier labels of the samples of each mode, from one report with static CGE,
    iterative CGE and plain samples (the report keeps iterative samples in generation
    order), and, with `beam`, a second report of static CGE with the paper's beam sampling."""
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
            decode=DecodeSettings(mode="sample", max_new_tokens=tokens),
            batch_size=8,
            seed=seed,
        )
    )
    result: dict[str, list[str]] = {}
    for s in report["samples"]:
        result.setdefault(s["mode"], []).append(classifier.predict(s["text"]))
    if beam:
        paper = DecodeSettings(mode="beam", num_beams=4, max_new_tokens=tokens, stop_at_eos=False)
        config = novelty.NoveltyConfig(base=base, finetuned=ft, out=str(out) + "-beam", num_samples=n,
                                       baseline_samples=0, decode=paper, batch_size=8, seed=seed)  # fmt: skip
        result["cge-beam"] = [classifier.predict(s["text"]) for s in novelty.run(config)["samples"]]
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--samples", type=int, default=24)
    p.add_argument("--tokens", type=int, default=64, help="new tokens per sample")
    p.add_argument("--lr", type=float, default=1e-3, help="iterative CGE base-update learning rate")
    p.add_argument("--seeds", type=int, default=2, help="sampling seeds per fine-tuned model")
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
        modes = {"baseline": "plain ft", "cge": "CGE sample", "cge-beam": "CGE beam", "cge-iterative": "iterative"}
        print(f"{'novel domain':<14}" + "".join(f"{label:>12}" for label in modes.values()))
        for domain in ("code", "spanish", "es_offensive"):
            novel = corpora.documents(domain, target_chars=600)[:150]
            ft = finetune_copy(base_dir, tokenizer, prose[300:450] + novel, tmp / f"ft-{domain}", steps=250)
            rates: dict[str, list[float]] = {}
            for seed in range(args.seeds):
                found = labels_by_mode(base_dir, ft, tmp / f"{domain}-{seed}", args.samples, args.tokens, classifier,
                                       args.lr, seed=seed, beam=True)  # fmt: skip
                for mode, labels in found.items():
                    rates.setdefault(mode, []).append(sum(x == domain for x in labels) / len(labels))
            print(f"{domain:<14}" + "".join(f"{sum(rates[m]) / len(rates[m]):>12.2f}" for m in modes), flush=True)

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
