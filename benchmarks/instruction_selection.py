"""Selecting instruction data with refsift, on small instruction sets built from the bundled
text: LoBaSS (learnability) and learning percentage (a small model choosing for a larger).

The candidate set: arithmetic questions with their answers ("Solve 12*j = -9*j + 21 for
j." -> "1") and text continuations (the opening of a prose or drama passage -> the next
sentences), mixed with two kinds of noise: questions with wrong answers, and openings paired
with the continuation of another passage. The held-out set is clean questions and
continuations. Every fine-tune runs the same number of steps; quality is the held-out
response loss (nats per response token, lower is better), scored by `refsift score
--prompt-field`.

LoBaSS (Chen et al. 2023): score the candidates under the base and under the base briefly
fine-tuned on all of them; keep the top k% by learnability, (nll_base - nll_ft) / nll_base;
compare with a random k% and with all candidates.

Learning percentage (Mekala et al. 2024, "small models select for large"): train a small
model on the candidates, keeping a checkpoint early and one at the end; learning percentage
(P0 - P1) / (P0 - Pn) says how much of its learning of an example came early. A larger
model is then fine-tuned on the k% learned latest (the hardest, as the paper selects), the
k% learned earliest, a random k%, and all.

    python benchmarks/instruction_selection.py              # about 10 minutes on 2 CPU cores
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
from pathlib import Path

import refsift
from refsift import corpora, tiny

PROMPT = "prompt"


def math_pairs() -> list[tuple[str, str]]:
    blocks = [b.strip().split("\n") for b in corpora.load_text("math").split("\n\n")]
    return [(f"Question: {b[0]}\nAnswer:", " " + b[1]) for b in blocks if len(b) == 2]


def continuation_pairs() -> list[tuple[str, str]]:
    pairs = []
    for domain in ("prose", "drama"):
        for doc in corpora.documents(domain, target_chars=500):
            cut = doc.find(". ", 80)
            if 0 < cut < 300:
                pairs.append((f"Continue the text:\n{doc[: cut + 1]}", " " + doc[cut + 2 : cut + 302]))
    return pairs


def instruction_sets(seed: int, n: int, noise: float):
    """(candidates, held-out) records {id, prompt, response, kind}."""
    rng = random.Random(seed)
    maths, texts = math_pairs(), continuation_pairs()
    rng.shuffle(maths)
    rng.shuffle(texts)
    held_out = [("math", *p) for p in maths[:150]] + [("text", *p) for p in texts[:60]]
    clean = [("math", *p) for p in maths[150 : 150 + n // 2]] + [("text", *p) for p in texts[60 : 60 + n // 2]]
    noisy = []
    for kind, prompt, _ in clean[: int(noise * len(clean))]:
        if kind == "math":
            noisy.append(("wrong answer", prompt, f" {rng.randint(-999, 999)}"))
        else:
            noisy.append(("mismatched", prompt, rng.choice(texts[200:])[1]))
    candidates = clean[int(noise * len(clean)) :] + noisy

    def records(rows, prefix):
        return [{"id": f"{prefix}{i}", PROMPT: p, "response": r, "kind": k} for i, (k, p, r) in enumerate(rows)]

    return records(candidates, "c"), records(held_out, "h")


def pretrained(directory: Path, tokenizer, *, layers: int, width: int, steps: int, seed: int) -> str:
    model = tiny.new_model(tokenizer, layers=layers, width=width, heads=4, seed=seed)
    general = sum((corpora.documents(d, 600)[:120] for d in ("prose", "drama", "fortunes")), [])
    general += [b for b in corpora.load_text("math").split("\n\n")[2000:2600]]  # the format, not the answers
    tiny.pretrain(model, tokenizer, general, steps=steps, lr=2e-3, seed=seed)
    return str(tiny.save(model, tokenizer, directory))


def score_args(roles: dict) -> dict:
    return dict(prompt_field=PROMPT, text_field="response", max_length=256, context=32, source_field="kind", **roles)


def response_loss(model: str, held_out: str, out: Path) -> float:
    with refsift.score(held_out, out=str(out), **score_args({"model": model})) as run:
        ((loss,),) = run.sql("SELECT sum(nll_model * n_tokens) / sum(n_tokens) FROM examples").fetchall()
    return loss


def fine_tune(model: str, mix: str, out: Path, steps: int, seed: int) -> str:
    refsift.finetune(mix, model=model, out=str(out), steps=steps, lr=1e-3, batch_size=16, seed=seed, progress=False)
    return str(out)


def select(run: str, out: Path, **options) -> str:
    refsift.select(run, out=str(out), **options)
    return str(out)


def table(title: str, results: dict[str, list[float]], shares: dict[str, str]) -> None:
    print(title)
    print(f"  {'training data':<34} {'held-out response loss':>24}  {'noise in the data':>17}")
    for name, losses in results.items():
        spread = f" ± {statistics.stdev(losses):.3f}" if len(losses) > 1 else ""
        print(f"  {name:<34} {statistics.fmean(losses):>16.3f}{spread:<8}  {shares.get(name, ''):>17}")


def noise_share(run: str, mix: str) -> str:
    with refsift.open_run(run) as opened:
        view = "selection_" + Path(mix).name.replace("-", "_")
        ((noisy, total),) = opened.sql(
            f"SELECT count(*) FILTER (WHERE e.source IN ('wrong answer', 'mismatched')), count(*) "
            f"FROM (SELECT DISTINCT doc_id FROM {view}) JOIN examples e USING (doc_id)"
        ).fetchall()
    return f"{noisy / total:.0%}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--candidates", type=int, default=600)
    p.add_argument("--noise", type=float, default=0.3, help="share of candidates made noisy")
    p.add_argument("--keep", default="30%", help="budget of every selection")
    p.add_argument("--steps", type=int, default=150, help="fine-tuning steps of every model trained on a selection")
    args = p.parse_args()
    tokenizer = tiny.train_tokenizer(sum((corpora.documents(d)[:60] for d in corpora.DOMAINS), []), 1024)
    lobass: dict[str, list[float]] = {}
    learning: dict[str, list[float]] = {}
    shares: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            d = Path(tmp) / f"seed{seed}"
            d.mkdir()
            candidates, held_out = instruction_sets(seed, args.candidates, args.noise)
            corpora.write_jsonl(d / "candidates.jsonl", candidates)
            corpora.write_jsonl(d / "held_out.jsonl", held_out)
            cand, held = str(d / "candidates.jsonl"), str(d / "held_out.jsonl")
            base = pretrained(d / "base", tokenizer, layers=2, width=128, steps=300, seed=seed)

            # LoBaSS: learnability after a short fine-tune on all candidates.
            refsift.score(cand, out=str(d / "all-run"), **score_args({"model": base})).close()
            everything = select(str(d / "all-run"), d / "all")
            brief = fine_tune(base, everything, d / "brief", steps=args.steps // 3, seed=seed)
            run = str(d / "lobass-run")
            refsift.score(cand, out=run, **score_args({"model": base, "finetuned": brief})).close()
            mixes = {
                f"top {args.keep} by learnability": select(run, d / "learnable", by="learnability", budget=args.keep),
                f"random {args.keep}": select(run, d / "random", by="hash(doc_id || 'seed')", budget=args.keep),
                "all candidates": everything,
            }
            for name, mix in mixes.items():
                model = fine_tune(base, mix, d / f"ft-{Path(mix).name}", steps=args.steps, seed=seed)
                lobass.setdefault(name, []).append(response_loss(model, held, d / f"eval-{Path(mix).name}"))
                if seed == 0 and name != "all candidates":
                    shares[name] = noise_share(run, mix)
            shares["all candidates"] = f"{args.noise:.0%}"

            # Learning percentage: a 1-layer model chooses for a 4-layer one.
            small = pretrained(d / "small", tokenizer, layers=1, width=64, steps=300, seed=seed)
            refsift.finetune(everything, model=small, out=str(d / "small-ft"), steps=args.steps, lr=1e-3,
                             batch_size=16, seed=seed, save_every=args.steps // 3, progress=False)  # fmt: skip
            run = str(d / "lp-run")
            checkpoints = [
                ("early", str(d / "small-ft" / f"checkpoint-{args.steps // 3}")),
                ("late", str(d / "small-ft")),
            ]
            refsift.score(cand, out=run, **score_args({"model": small, "checkpoints": checkpoints})).close()
            large = pretrained(d / "large", tokenizer, layers=4, width=192, steps=300, seed=seed)
            by_lp = dict(by="learning_percentage", budget=args.keep)
            mixes = {
                f"{args.keep} learned latest (hardest)": select(run, d / "hard", order="asc", **by_lp),
                f"{args.keep} learned earliest": select(run, d / "easy", **by_lp),
                f"random {args.keep}": select(run, d / "lp-random", by="hash(doc_id || 'seed')", budget=args.keep),
                "all candidates": everything,
            }
            for name, mix in mixes.items():
                model = fine_tune(large, mix, d / f"large-{Path(mix).name}", steps=args.steps, seed=seed)
                learning.setdefault(name, []).append(response_loss(model, held, d / f"large-eval-{Path(mix).name}"))
                if seed == 0 and name not in shares:
                    shares[name] = noise_share(run, mix)
            print(f"seed {seed} done", flush=True)
    print(
        f"\n{args.candidates} candidates ({args.noise:.0%} noisy), {args.steps} fine-tuning steps, {args.seeds} seeds"
    )
    table("LoBaSS: a 2-layer model, its own short fine-tune as the learnability probe", lobass, shares)
    table("Learning percentage: a 1-layer model's checkpoints select for a 4-layer model", learning, shares)


if __name__ == "__main__":
    main()
