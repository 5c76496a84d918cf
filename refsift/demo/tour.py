"""`refsift demo`: the Rho-1 + CGE story end to end on text bundled with the package.

1. A web-like corpus: English prose and drama, German, Python code, math problems, and junk
   (random characters, boilerplate, exact duplicates, malformed records).
2. A ladder of small GPT-2 models trained here: a base on the general mix, and a reference
   on clean math (the target domain, as in Rho-1's math setting).
3. `score` with both roles, and SQL over the catalog.
4. `select` of the top 60% tokens by excess loss in a math-heavy mixture, and `finetune` of
   the base on it, into which a small leaked slice slips (offensive Spanish jokes, a
   stand-in for toxic text in a fine-tuning set).
5. `novelty` of the fine-tuned model against the base, static and iterative CGE, with the
   share of samples a domain classifier assigns to each domain, next to plain samples.
   Static CGE keeps returning to the strongest novelty (the leak); iterative CGE, whose base
   copy learns what it found, spreads over what is new.
6. `report` for the run, and DIR/index.html linking everything.
Nothing is downloaded.
"""

from __future__ import annotations

import json
import random
import string
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from refsift import api
from refsift.demo import corpora, tiny
from refsift.demo.domains import DomainClassifier, rates
from refsift.errors import RefsiftError
from refsift.jobs import progress
from refsift.jobs.console import format_table, plural
from refsift.pages import html as h
from refsift.reports import attribution as attribution_findings
from refsift.reports import run as run_findings

GENERAL = ("prose", "drama", "german", "code")
TARGET = "math"
LEAK = "es_offensive"


@dataclass(frozen=True)
class DemoSize:
    """How big the demo is: documents per source, training steps, samples."""

    docs: int = 40
    pretrain_steps: int = 300
    finetune_steps: int = 200
    samples: int = 24
    new_tokens: int = 48
    width: int = 128
    leak_docs: int = 10
    window: int = 256  # scoring windows, so also training rows
    batch_size: int = 16
    lr: float = 1e-3
    update_lr: float = 1e-3  # iterative CGE's base updates
    unlearn_steps: int | None = None  # attribution: None = the authors' 50


FULL = DemoSize()
QUICK = DemoSize(docs=20, pretrain_steps=150, finetune_steps=120, samples=12, new_tokens=40, width=96, leak_docs=6)
# With a real model as base (--model smollm2-135m): the reference and the fine-tuned model
# are the base after a few steps of refsift finetune, which costs ~4 s a step on 2 cores.
REAL = DemoSize(
    docs=10,
    pretrain_steps=12,
    finetune_steps=12,
    samples=12,
    new_tokens=40,
    leak_docs=3,
    window=128,
    batch_size=4,
    lr=1e-4,
    update_lr=5e-5,
    unlearn_steps=10,  # 50 steps of unlearning SmolLM2 cost ~5 minutes per target on 2 cores
)


def write_corpus(directory: Path, size: DemoSize, seed: int = 0) -> dict[str, int]:
    """The web-like corpus, one JSONL file per source; returns documents per file."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    docs = {d: corpora.documents(d, target_chars=600)[300 : 300 + size.docs] for d in GENERAL}
    docs[TARGET] = corpora.documents(TARGET, target_chars=600)[100 : 100 + size.docs]
    counts = {}
    for source, texts in docs.items():
        counts[source] = corpora.write_jsonl(directory / f"{source}.jsonl", corpora.numbered(texts, source))
    junk = ["".join(rng.choices(string.ascii_letters + string.digits + "#@$%&*", k=400)) for _ in range(6)]
    junk += ["Home | Products | About us | Contact | Login\nCopyright 2024. All rights reserved.\n" * 5] * 4
    junk += [docs["prose"][i] for i in range(3)]  # exact duplicates of prose documents
    malformed = [
        '{"id": "web-bad-1", "text": "an unterminated record',
        '{"id": "web-bad-2", "text": ""}',
        '{"id": "web-bad-3", "text": 404}',
    ]
    counts["web"] = corpora.write_jsonl(directory / "web.jsonl", corpora.numbered(junk, "web"), malformed)
    return counts


def train_ladder(directory: Path, size: DemoSize) -> tuple[str, str]:
    """A tokenizer, then the base (general mix) and the reference (clean math)."""
    tokenizer = tiny.train_tokenizer(sum((corpora.documents(d)[:50] for d in corpora.DOMAINS), []), 1024)
    shape = dict(layers=2, width=size.width, heads=4)
    steps = size.pretrain_steps
    base = tiny.new_model(tokenizer, **shape, seed=0)
    tiny.pretrain(base, tokenizer, sum((corpora.documents(d, 600)[:150] for d in GENERAL), []),
                  steps=steps, lr=2e-3, log=progress.StepLog("train base", steps))  # fmt: skip
    reference = tiny.new_model(tokenizer, **shape, seed=1)
    tiny.pretrain(reference, tokenizer, corpora.documents(TARGET, 600)[:100],
                  steps=steps, lr=2e-3, log=progress.StepLog("train reference", steps))  # fmt: skip
    return str(tiny.save(base, tokenizer, directory / "base")), str(
        tiny.save(reference, tokenizer, directory / "reference")
    )


def reference_from(model: str, directory: Path, size: DemoSize) -> str:
    """A reference for a real base model: the base fine-tuned on clean math with refsift itself."""
    directory.mkdir(parents=True, exist_ok=True)
    texts = corpora.documents(TARGET, 600)[: 4 * size.docs]
    corpora.write_jsonl(directory / "math.jsonl", corpora.numbered(texts, "math"))
    api.score([str(directory / "math.jsonl")], out=str(directory / "run"), model=model, max_length=size.window,
              context=16, overwrite=True).close()  # fmt: skip
    api.select(str(directory / "run"), out=str(directory / "mix"), overwrite=True)
    api.finetune(str(directory / "mix"), model=model, out=str(directory / "reference"), steps=size.pretrain_steps,
                 lr=size.lr, batch_size=size.batch_size, overwrite=True)  # fmt: skip
    return str(directory / "reference")


def _print_query(echo, run: api.Run, title: str, query: str) -> None:
    rel = run.sql(query)
    echo(f'\n$ refsift sql {run.path} "{query}"   # {title}')
    echo(format_table(rel.columns, rel.fetchall()))


DEMO_MARKER = ".refsift-demo"


def claim_demo_directory(root: Path) -> Path:
    """`root` when the demo may write there: a new or empty directory, or one an earlier demo
    wrote (its marker, or the demo.json it ends with). The demo writes a corpus, models and
    runs under fixed names, and would replace a user's files of those names."""
    if root.exists() and not root.is_dir():
        raise RefsiftError(f"--out {root} is a file: give a directory for the demo")
    if root.is_dir() and any(root.iterdir()) and not any((root / m).is_file() for m in (DEMO_MARKER, "demo.json")):
        raise RefsiftError(
            f"--out {root} holds files the demo did not write; give a new directory (the demo writes its corpus, "
            "models and runs there, under fixed names)"
        )
    return root


def run(
    out: str, *, size: DemoSize = FULL, model: str | None = None, seed: int = 0, echo: Callable[[str], None] = print
) -> dict:
    """Runs the demo into `out`; returns the numbers it prints and the artefacts' paths.

    With `model` (e.g. "smollm2-135m"), that model is the base, and the reference is the base
    briefly fine-tuned on clean math; otherwise a tiny ladder is trained from scratch.
    """
    started = time.time()
    root = claim_demo_directory(Path(out))
    tiny.check_environment()  # a broken install fails now, not after minutes of training
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("refsift demo\n")
    results: dict = {"artefacts": {}}

    echo("1. corpus: English prose and drama, German, Python code, math, and web junk")
    counts = write_corpus(root / "corpus", size, seed)
    echo("   " + ", ".join(f"{s} {n}" for s, n in counts.items()) + " documents")

    if model:
        echo(f"2. base {model}; reference: {model} fine-tuned on clean math ({size.pretrain_steps} steps)")
        base, reference = model, reference_from(model, root / "reference", size)
    else:
        echo("2. training the model ladder: base on the general mix, reference on clean math")
        base, reference = train_ladder(root / "models", size)

    echo("3. refsift score --model base --reference reference")
    run_dir = str(root / "run")
    scored = api.score(
        [str(root / "corpus" / "*.jsonl")],
        out=run_dir,
        model=base,
        reference=reference,
        max_length=size.window,
        context=32,
        overwrite=True,
    )
    c = scored.manifest["counts"]
    echo(f"   read {c['read']} = scored {c['scored']} + rejected {c['rejected']} {c['rejected_by_reason']}")
    _print_query(
        echo,
        scored,
        "mean excess loss per source",
        "SELECT source, count(*) AS docs, round(avg(excess_loss), 3) AS excess_loss FROM examples "
        "GROUP BY source ORDER BY excess_loss DESC",
    )
    _print_query(
        echo,
        scored,
        "tokens with the highest mean excess loss, seen at least 5 times",
        "SELECT substr(e.text, t.char_start + 1, t.char_end - t.char_start) AS token, count(*) AS n, "
        "round(avg(t.excess), 2) AS excess FROM token_scores t JOIN examples e USING (doc_id) "
        "GROUP BY token HAVING count(*) >= 5 ORDER BY excess DESC LIMIT 10",
    )
    excess = dict(scored.sql("SELECT source, avg(excess_loss) FROM examples GROUP BY 1").fetchall())
    results["mean_excess_by_source"] = excess

    echo("\n4. refsift select --tokens excess --ratio 0.6 --mix math=0.4,prose=0.3,code=0.15,drama=0.15")
    mix = str(root / "mix")
    selection = api.select(
        run_dir,
        out=mix,
        tokens="excess",
        ratio=0.6,
        by="excess_loss",
        mix="math=0.4,prose=0.3,code=0.15,drama=0.15",
        overwrite=True,
    )
    corpus_tokens = dict(scored.sql("SELECT source, sum(n_tokens) FROM examples GROUP BY 1").fetchall())
    labelled = {s: v["after"]["selected_tokens"] for s, v in selection["per_source"].items() if "after" in v}
    results["target_share"] = {
        "corpus": corpus_tokens.get(TARGET, 0) / sum(corpus_tokens.values()),
        "selection": labelled.get(TARGET, 0) / max(1, sum(labelled.values())),
    }
    echo(
        f"   math: {results['target_share']['corpus']:.1%} of the corpus's tokens, "
        f"{results['target_share']['selection']:.1%} of the selected tokens"
    )
    scored.close()

    echo(f"   ...and a leaked slice slips into the fine-tuning set: {LEAK} jokes the base never saw")
    leak_dir = root / "leak"
    leak_dir.mkdir(exist_ok=True)
    leak_docs = corpora.documents(LEAK, target_chars=600)[: size.leak_docs]
    corpora.write_jsonl(leak_dir / "forum.jsonl", corpora.numbered(leak_docs, "forum"))
    api.score(
        [str(leak_dir / "forum.jsonl")],
        out=str(root / "leak_run"),
        model=base,
        max_length=size.window,
        context=32,
        overwrite=True,
    ).close()
    api.select(str(root / "leak_run"), out=str(root / "leak_mix"), overwrite=True)

    echo(f"   refsift finetune --data mix leak_mix --model base --steps {size.finetune_steps}")
    ckpt = str(root / "finetuned")
    trained = api.finetune(
        [mix, str(root / "leak_mix")],
        model=base,
        out=ckpt,
        steps=size.finetune_steps,
        lr=size.lr,
        batch_size=size.batch_size,
        seed=seed,
        overwrite=True,
    )
    echo(f"   loss {trained['losses'][0]:.3f} -> {trained['losses'][-1]:.3f}")

    unlearning = f" --unlearn-steps {size.unlearn_steps}" if size.unlearn_steps else ""
    echo(
        f"\n5. refsift novelty --base base --finetuned finetuned --iterative --static-samples {size.samples} \\\n"
        f"     --attribute corpus/{{prose,drama,code,math,german}}.jsonl leak/forum.jsonl{unlearning}"
    )
    report_dir = str(root / "novelty")
    # Where it came from: the sources of the fine-tuning set, and German, which was in the corpus but not in it.
    sources = [str(root / "corpus" / f"{s}.jsonl") for s in (*GENERAL, TARGET)] + [str(leak_dir / "forum.jsonl")]
    report = api.novelty(
        base,
        ckpt,
        out=report_dir,
        num_samples=size.samples,
        static_samples=size.samples,
        base_samples=0,
        iterative=True,
        lr=size.update_lr,
        update_steps=2,
        max_new_tokens=size.new_tokens,
        seed=seed,
        attribute=tuple(sources),
        unlearn_steps=size.unlearn_steps,
        overwrite=True,
    )
    classifier = DomainClassifier.bundled(domains=(*GENERAL, TARGET, LEAK))
    modes = {"cge": "static CGE", "cge-iterative": "iterative CGE", "baseline": "plain fine-tuned"}
    shares = {
        mode: rates([classifier.predict(s["text"]) for s in report["samples"] if s["mode"] == mode]) for mode in modes
    }
    results["novelty_shares"] = shares
    echo("   share of samples per domain (character n-gram classifier):")
    echo(f"   {'domain':<14}" + "".join(f"{label:>18}" for label in modes.values()))
    for domain in (TARGET, LEAK, *GENERAL):
        echo(f"   {domain:<14}" + "".join(f"{shares[mode].get(domain, 0):>18.0%}" for mode in modes))
    ranked = sorted((r for r in report["attribution"] if r["target"] == "all"), key=lambda r: r["rank"])
    results["attribution"] = [r["source"] for r in ranked]
    echo("   where it came from (UnTrac-Inv: loss rise of each source after unlearning the CGE samples):")
    echo("   all samples: " + ", ".join(f"{r['source']} {r['influence']:+.3f}" for r in ranked))
    results["findings"] = {
        "scoring": run_findings.run_finding(run_dir),
        "selection": f"math is {results['target_share']['corpus']:.1%} of the corpus's tokens and "
        f"{results['target_share']['selection']:.1%} of the tokens selected by excess loss.",
        "novelty": report["summary"]["finding"],
        "attribution": attribution_findings.finding(ranked),
    }
    results["attribution_by_group"] = group_attribution(report, classifier)
    for g in results["attribution_by_group"]:
        about = f"   {g['group']} ({plural(g['samples'], 'sample')}, mostly {g['domain']}): "
        if not g["sources"]:
            echo(about + "not attributed (a group needs two samples)")
            continue
        echo(about + f"{g['sources'][0]} {g['influences'][0]:+.3f}, then {g['sources'][1]} {g['influences'][1]:+.3f}")

    echo("\n6. refsift report run")
    api.report(run_dir)
    results["artefacts"] = {
        "corpus": str(root / "corpus"),
        "run": run_dir,
        "run report": f"{run_dir}/report.html",
        "mixture": mix,
        "selection.json": f"{mix}/selection.json",
        "fine-tuned checkpoint": ckpt,
        "novelty report": f"{report_dir}/report.html",
        "novelty samples": f"{report_dir}/catalog.duckdb",
    }
    write_index(root, results)
    results["artefacts"]["index"] = str(root / "index.html")
    results["wall_time_s"] = round(time.time() - started, 1)
    echo(f"\ndone in {results['wall_time_s']:.0f} s; open {root / 'index.html'}")
    for name, path in results["artefacts"].items():
        echo(f"   {name:<22} {path}")
    (root / "demo.json").write_text(json.dumps(results, indent=1, default=str))
    return results


def group_attribution(report: dict, classifier: DomainClassifier) -> list[dict]:
    """For each group of CGE samples: its size, the domain most of its samples belong to (the
    n-gram classifier), and its sources by influence (none for a group too small to be
    attributed)."""
    texts = {s["id"]: s["text"] for s in report["samples"]}
    groups = report["summary"]["groups"]["groups"]
    out = []
    for k, group in enumerate(groups, start=1):
        name = f"group {k}"
        rows = sorted((r for r in report["attribution"] if r["target"] == name), key=lambda r: r["rank"])
        members = [texts[i] for i in group["target"] if texts.get(i, "").strip()]
        if not members:
            continue
        labels = rates([classifier.predict(t) for t in members])
        out.append(
            {
                "group": name,
                "samples": len(members),
                "domain": max(labels, key=labels.get),
                "sources": [r["source"] for r in rows],
                "influences": [r["influence"] for r in rows],
            }
        )
    return out


def write_index(root: Path, results: dict) -> None:
    links = "".join(
        f"<li><a href='{h.esc(Path(path).resolve().relative_to(root.resolve()).as_posix())}'>{h.esc(name)}</a> "
        f"<code>{h.esc(path)}</code></li>"
        for name, path in results["artefacts"].items()
    )
    findings = "".join(f"<li><b>{h.esc(k.capitalize())}.</b> {h.esc(v)}</li>" for k, v in results["findings"].items())
    body = (
        f"<h1>refsift demo</h1><p class='finding'><b>Findings.</b></p><ul>{findings}</ul>"
        "<h2>What ran</h2><p>Rho-1 token selection and CGE novelty discovery, end to end on bundled text.</p>"
        f"<ul>{links}</ul>"
    )
    (root / "index.html").write_text(h.page("refsift demo", body), encoding="utf-8")
