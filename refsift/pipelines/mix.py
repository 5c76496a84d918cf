"""`refsift mix`: which weights of the inputs' sources train the best model for a target?

    sources -> blocks (launcher) -> --proxies mixtures (RegMix's Dirichlet sampling, natural
    and uniform among them, a seeded share held out) -> TrainProxies (one proxy per
    mixture, committed as it finishes) -> target loss per mixture -> fit (LightGBM or the
    mixing law, by leave-one-out Spearman) -> the held-out mixtures' Spearman -> proposal
    (the mean of the best simulated mixtures) -> validation: proposed, natural and uniform
    over --validate-seeds (TrainProxies again) -> mixture.json, report.html

Every searched proxy starts from the same initialisation (seed 0) and reads each source's
blocks in the same order, so what differs between two proxies is their mixture (common
random numbers; `--no-shared-seed` gives each its own). The validation proxies use seeds
1.. so that they are not the fitted runs again.
`refsift select RUN --mix-from DIR` takes the proposed weights.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from refsift import catalog
from refsift.config import MixConfig
from refsift.errors import RefsiftError
from refsift.jobs import rundir, runners
from refsift.kernels import ablation, mixing
from refsift.kernels.classifier import spearman
from refsift.kernels.proxy import mixture_rows
from refsift.pipelines.ablate import (
    TABLES,
    claim_proxies,
    proxy_settings,
    read_eval,
    resolve_tokenizer,
    source_blocks,
    train,
)
from refsift.transforms.train_proxies import eval_path, job_path

MIXTURE = "mixture.json"
SEARCH_SEEDS = 10_000  # the first seed of searched proxies that do not share one (validation seeds stay below)


def mix_text(weights: dict[str, float]) -> str:
    """Weights as `select --mix` takes them (shares that sum to 1)."""
    kept = {s: w for s, w in weights.items() if w > 0}
    rounded = {s: round(w, 4) for s, w in kept.items()}
    largest = max(rounded, key=rounded.get)
    rounded[largest] = round(rounded[largest] + 1 - sum(rounded.values()), 4)
    return ",".join(f"{s}={w:g}" for s, w in rounded.items())


def target_losses(doc_losses: list[dict]) -> dict[tuple[str, int], float]:
    """(arm, seed) -> nats per token over every target document."""
    sums: dict[tuple[str, int], list[float]] = {}
    for r in doc_losses:
        if r["n_tokens"]:
            acc = sums.setdefault((r["arm"], r["seed"]), [0.0, 0])
            acc[0] += r["nll"] * r["n_tokens"]
            acc[1] += r["n_tokens"]
    return {key: nats / n for key, (nats, n) in sums.items()}


def candidates(cfg: MixConfig, sources: list[str], available: np.ndarray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The mixtures to train, their names, and which are held out of the fit."""
    natural = available / available.sum()
    cap = mixing.caps(available, cfg.tokens, cfg.max_epochs)
    if cap.sum() < 1 - 1e-9:
        raise RefsiftError(
            f"no mixture of these sources makes --tokens {cfg.tokens} within --max-epochs {cfg.max_epochs:g}: "
            "fewer tokens, or more data"
        )
    fixed, names = [], []
    for name, w in (("natural", natural), ("uniform", np.full(len(sources), 1 / len(sources)))):
        if (w <= cap + 1e-12).all():
            fixed.append(w)
            names.append(name)
    sampled = mixing.sample(natural, cfg.proxies - len(fixed), cap=cap, seed=cfg.seed)
    weights = np.vstack([*fixed, sampled]) if len(sampled) else np.array(fixed)
    names += [f"m{i:03d}" for i in range(len(sampled))]
    rng = np.random.default_rng(cfg.seed)
    held = np.zeros(len(weights), dtype=bool)
    n_held = round(cfg.heldout * len(sampled))
    if n_held:
        held[len(fixed) + rng.choice(len(sampled), n_held, replace=False)] = True
    return weights, names, held


def fit(weights: np.ndarray, losses: np.ndarray, held: np.ndarray, seed: int) -> tuple[object, dict]:
    """The regressor with the better leave-one-out Spearman on the fitted mixtures, fitted on
    them all; its Spearman on the held-out mixtures (never fitted on)."""
    train_w, train_y = weights[~held], losses[~held]
    scored = {name: mixing.loo_spearman(make, train_w, train_y) for name, make in mixing.regressors(seed).items()}
    name = max(scored, key=lambda n: -np.inf if np.isnan(scored[n]) else scored[n])
    model = mixing.regressors(seed)[name]().fit(train_w, train_y)
    heldout = spearman(model.predict(weights[held]), losses[held]) if held.sum() >= mixing.MIN_HELDOUT else None
    return model, {
        "regressor": name,
        "loo_spearman": _number(scored[name]),
        "loo_spearman_by_regressor": {n: _number(rho) for n, rho in scored.items()},
        "heldout_spearman": _number(heldout),
        "fitted_mixtures": int((~held).sum()),
        "heldout_mixtures": int(held.sum()),
    }


def search_seeds(cfg: MixConfig, n: int) -> list[int]:
    """The searched proxies' seeds: 0 for all (common random numbers), or with
    --no-shared-seed one each, apart from the validation seeds 1..--validate-seeds."""
    return [0] * n if cfg.shared_seed else [SEARCH_SEEDS + i for i in range(n)]


def _number(rho: float | None) -> float | None:
    """A Spearman for JSON: null where there is none (too few mixtures, or all alike)."""
    return None if rho is None or np.isnan(rho) else float(rho)


def write_rows(cfg: MixConfig, blocks: dict, name: str, shares: dict[str, float], seed: int) -> dict:
    """One proxy's rows under OUT/_jobs/; its job."""
    rows = mixture_rows(blocks, shares, cfg.tokens, cfg.block, seed)
    path = job_path(cfg.out, name, seed)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pq.write_table(pa.table({"input_ids": [r["input_ids"] for r in rows], "labels": [None] * len(rows)}), path)
    available = {s: len(b) * cfg.block for s, b in blocks.items()}
    epochs = ablation.epochs(shares, available, cfg.tokens)
    return {"arm": name, "seed": seed, "max_epochs": float(max(epochs.values()))}


def run(cfg: MixConfig, beam_args: list[str] = ()) -> dict:
    """Searches, fits, proposes and validates; returns mixture.json's content."""
    from refsift.pages import mix as page

    options = runners.pipeline_options(list(beam_args))
    runners.check_device(cfg.device, options)
    if not rundir.is_local(cfg.out):
        raise RefsiftError("mixture searches are written to a local directory")
    tokenizer_spec, tokenizer = resolve_tokenizer(cfg, [])
    blocks = source_blocks(cfg, tokenizer)
    sources = sorted(blocks)
    if len(sources) < 2:
        raise RefsiftError(f"--input holds one source ({', '.join(sources)}): a mixture needs two or more")
    if cfg.proxies < len(sources) + 2:
        raise RefsiftError(
            f"--proxies {cfg.proxies} is too few for {len(sources)} sources: at least {len(sources) + 2}"
        )
    held_out = read_eval(cfg, list(cfg.targets))
    if not held_out:
        raise RefsiftError("--target holds no document")
    available = np.array([len(blocks[s]) * cfg.block for s in sources], dtype=np.float64)
    weights, names, held = candidates(cfg, sources, available)
    settings = proxy_settings(cfg, tokenizer_spec, tokenizer, curve_points=1)
    started = time.time()
    protect = [*cfg.inputs, *cfg.targets]
    with claim_proxies(cfg, "mixture", protect) as claim:
        pq.write_table(pa.Table.from_pylist(held_out), eval_path(cfg.out))
        seeds = search_seeds(cfg, len(names))
        search = [write_rows(cfg, blocks, n, dict(zip(sources, w)), s) for n, w, s in zip(names, weights, seeds)]
        losses_by_job = target_losses(train(cfg, search, settings, options)["doc_losses"])
        losses = np.array([losses_by_job[(n, s)] for n, s in zip(names, seeds)])
        model, fitted = fit(weights, losses, held, cfg.seed)
        proposed = mixing.propose(model, available / available.sum(), cap=mixing.caps(available, cfg.tokens,
                                  cfg.max_epochs), seed=cfg.seed + 1)  # fmt: skip
        arms = {"proposed": proposed, "natural": weights[names.index("natural")] if "natural" in names else
                available / available.sum(), "uniform": np.full(len(sources), 1 / len(sources))}  # fmt: skip
        validation_jobs = [write_rows(cfg, blocks, f"validate-{arm}", dict(zip(sources, w)), seed)
                           for arm, w in arms.items() for seed in range(1, cfg.validate_seeds + 1)]  # fmt: skip
        tables = train(cfg, search + validation_jobs, settings, options)
        catalog.build(cfg.out, TABLES, {})
        validated = target_losses([r for r in tables["doc_losses"] if r["arm"].startswith("validate-")])
        validation = {arm: [validated[(f"validate-{arm}", s)] for s in range(1, cfg.validate_seeds + 1)]
                      for arm in arms}  # fmt: skip
        per_doc = {arm: _doc_table(tables["doc_losses"], f"validate-{arm}", cfg.validate_seeds) for arm in arms}
        comparisons = [
            {"a": "proposed", "b": other, "eval": "target", **ablation.paired(per_doc["proposed"], per_doc[other])}
            for other in ("natural", "uniform")
        ]
        weights_out = {s: float(w) for s, w in zip(sources, proposed)}
        record = {
            **rundir.header(),
            "weights": weights_out,
            "mix": mix_text(weights_out),
            "natural": {s: float(w) for s, w in zip(sources, available / available.sum())},
            "fit": fitted,
            "validation": validation,
            "comparisons": comparisons,
            "searched": [
                {
                    "name": n,
                    "weights": dict(zip(sources, map(float, w))),
                    "loss": float(y),
                    "heldout": bool(h),
                    "predicted": float(model.predict(w[None, :])[0]),
                }
                for n, w, y, h in zip(names, weights, losses, held)
            ],  # fmt: skip
            "settings": dict(vars(cfg)),
            "tokenizer": tokenizer_spec,
            "wall_time_s": round(time.time() - started, 2),
        }
        rundir.write_json(rundir.join(cfg.out, MIXTURE), record)
        page.write(record, cfg.out)
        claim.complete()
    return record


def _doc_table(doc_losses: list[dict], arm: str, seeds: int) -> np.ndarray:
    """[seeds, documents] of a validation arm's losses (seeds 1..)."""
    mine = [r for r in doc_losses if r["arm"] == arm and r["n_tokens"]]
    docs = sorted({r["doc_id"] for r in mine})
    index = {d: i for i, d in enumerate(docs)}
    table = np.full((seeds, len(docs)), np.nan)
    for r in mine:
        table[r["seed"] - 1, index[r["doc_id"]]] = r["nll"]
    return table


def weights_of(directory: str) -> str:
    """The `--mix` text of a `refsift mix` directory (for `select --mix-from`)."""
    rundir.require(directory, "mixture")
    record = rundir.read_json(rundir.join(directory, MIXTURE)) or {}
    if not isinstance(record.get("mix"), str):
        raise RefsiftError(f"{directory}: its {MIXTURE} holds no mixture")
    return record["mix"]
