"""`refsift mix` end to end at a small size: the search, the fit, the proposal and its
validation, `select --mix-from`, resuming a killed search, and the refusals."""

import json
import os

import pytest

from refsift import cli
from refsift.kernels.selection import parse_mix
from tests.conftest import write_jsonl

SOURCES = ("code", "prose", "spanish")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from refsift.demo import corpora

    d = tmp_path_factory.mktemp("mix")
    for domain in SOURCES:
        write_jsonl(d / f"{domain}.jsonl", [{"id": f"{domain}{i}", "text": t} for i, t in
                                           enumerate(corpora.documents(domain)[:40])])  # fmt: skip
    target = [{"id": f"t{domain}{i}", "text": t[:400]} for domain in ("code", "prose")
              for i, t in enumerate(corpora.documents(domain)[150:155])]  # fmt: skip
    write_jsonl(d / "target.jsonl", target)
    return d


def mix(corpus, prose_model, out, *extra, sources=SOURCES):
    argv = ["mix", "--input", *(str(corpus / f"{s}.jsonl") for s in sources), "--target", str(corpus / "target.jsonl"),
            "--tokenizer", prose_model, "--tokens", "2500", "--proxies", "7", "--heldout", "0.6",
            "--validate-seeds", "2", "--proxy", "1x32", "--block", "64", "--max-length", "128", "--context", "16",
            "--out", str(out), *extra]  # fmt: skip
    return cli.main(argv)


@pytest.fixture(scope="module")
def searched(corpus, prose_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "m"
    assert mix(corpus, prose_model, out) == 0
    return out


def test_a_search_proposes_fits_and_validates(searched):
    record = json.loads((searched / "mixture.json").read_text())
    weights = record["weights"]
    assert set(weights) == set(SOURCES) and sum(weights.values()) == pytest.approx(1)
    assert parse_mix(record["mix"]) == pytest.approx({s: w for s, w in weights.items() if w > 0}, abs=2e-4)
    assert set(record["fit"]) >= {"regressor", "loo_spearman", "heldout_spearman"}
    assert record["fit"]["fitted_mixtures"] + record["fit"]["heldout_mixtures"] == 7
    assert {"natural", "uniform"} <= {s["name"] for s in record["searched"]}
    assert not any(s["heldout"] for s in record["searched"] if s["name"] in ("natural", "uniform"))
    assert set(record["validation"]) == {"proposed", "natural", "uniform"}
    assert all(len(losses) == 2 for losses in record["validation"].values())
    assert [(c["a"], c["b"]) for c in record["comparisons"]] == [("proposed", "natural"), ("proposed", "uniform")]
    for searched_mixture in record["searched"]:  # every mixture within the epoch cap
        assert max(searched_mixture["weights"].values()) <= 1.0
    assert "The fit" in (searched / "report.html").read_text()


def test_select_takes_the_proposed_weights(searched, corpus, prose_model, tmp_path):
    run = tmp_path / "run"
    assert cli.main(["score", "--input", *(str(corpus / f"{s}.jsonl") for s in SOURCES), "--model", prose_model,
                     "--out", str(run), "--max-length", "128", "--context", "16"]) == 0  # fmt: skip
    assert (
        cli.main(["select", str(run), "--mix-from", str(searched), "--budget", "40%", "--out", str(tmp_path / "s")])
        == 0
    )
    settings = json.loads((tmp_path / "s" / "selection.json").read_text())["settings"]
    assert settings["mix"] == json.loads((searched / "mixture.json").read_text())["mix"]
    assert (
        cli.main(["select", str(run), "--mix-from", str(searched), "--mix", "code=1", "--out", str(tmp_path / "t")])
        == 2
    )


def test_ablate_takes_the_proposed_mixture_as_an_arm(searched, corpus, prose_model, tmp_path):
    argv = ["ablate", "--arm", f"proposed={searched}", "--arm", "natural=natural", "--input",
            *(str(corpus / f"{s}.jsonl") for s in SOURCES), "--eval", str(corpus / "target.jsonl"), "--tokenizer",
            prose_model, "--tokens", "2500", "--seeds", "1", "--proxy", "1x32", "--block", "64", "--max-length", "128",
            "--context", "16", "--out", str(tmp_path / "ab")]  # fmt: skip
    assert cli.main(argv) == 0
    report = json.loads((tmp_path / "ab" / "report.json").read_text())
    assert report["arms"]["proposed"]["spec"] == json.loads((searched / "mixture.json").read_text())["mix"]


def test_resume_trains_only_the_proxies_not_committed(searched, corpus, prose_model, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(searched, copy, ignore=shutil.ignore_patterns(".lock"))
    done = sorted((copy / "_done").glob("*.json"))
    for lost in done[:3]:  # a search killed before these proxies committed
        lost.unlink()
    kept = {p.name: os.stat(p).st_mtime_ns for p in done[3:]}
    (copy / ".refsift").write_text(json.dumps({"kind": "mixture", "status": "running"}))
    assert mix(corpus, prose_model, copy, "--resume") == 0
    assert {p.name: os.stat(p).st_mtime_ns for p in done[3:]} == kept  # not trained again
    assert all(p.exists() for p in done[:3])
    before, after = (json.loads((d / "mixture.json").read_text()) for d in (searched, copy))
    assert after["weights"] == pytest.approx(before["weights"])
    for arm, losses in before["validation"].items():
        assert after["validation"][arm] == pytest.approx(losses)


@pytest.mark.parametrize(
    "extra, sources, message",
    [
        ([], ("code",), "holds one source"),
        (["--proxies", "4"], SOURCES, "too few for 3 sources"),
        (["--tokens", "10000000"], SOURCES, "no mixture of these sources makes --tokens 10000000"),
        (["--target", "EMPTY"], SOURCES, "yields no document"),
    ],
)
def test_refusals_come_before_any_work(corpus, prose_model, tmp_path, capsys, extra, sources, message):
    (tmp_path / "empty.jsonl").write_text("\n")
    extra = [str(tmp_path / "empty.jsonl") if x == "EMPTY" else x for x in extra]
    out = tmp_path / "refused"
    assert mix(corpus, prose_model, out, *extra, sources=sources) == 2
    assert message in capsys.readouterr().err and not out.exists()


def test_resume_refuses_settings_other_than_the_proxies_were_trained_with(
    searched, corpus, prose_model, tmp_path, capsys
):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(searched, copy, ignore=shutil.ignore_patterns(".lock"))
    done = sorted((copy / "_done").glob("*.json"))
    done[0].unlink()  # one proxy left to train
    (copy / ".refsift").write_text(json.dumps({"kind": "mixture", "status": "running"}))

    def files() -> dict[str, int]:
        return {str(p.relative_to(copy)): p.stat().st_mtime_ns for p in copy.rglob("*") if p.name != ".lock"}

    before = files()
    assert mix(corpus, prose_model, copy, "--resume", "--lr", "1e-3", "--schedule", "constant") == 2
    err = capsys.readouterr().err
    assert "cannot resume" in err and "--lr was 0.002, now 0.001 (and 1 more)" in err
    assert files() == before  # nothing trained or written


def test_without_a_shared_seed_each_searched_proxy_has_its_own(searched, corpus, prose_model, tmp_path):
    out = tmp_path / "own"
    assert mix(corpus, prose_model, out, "--no-shared-seed") == 0
    seeds = {}
    for done in (out / "_done").glob("*.json"):
        arm, _, seed = done.stem.rpartition("-")
        seeds.setdefault(arm.startswith("validate-"), set()).add(int(seed))
    assert seeds == {False: set(range(10_000, 10_007)), True: {1, 2}}  # none is a validation run again
    shared, own = ({s["name"]: s["loss"] for s in json.loads((d / "mixture.json").read_text())["searched"]}
                   for d in (searched, out))  # fmt: skip
    assert own.keys() == shared.keys()
    assert own["natural"] != pytest.approx(shared["natural"])  # the same mixture from another initialisation
    assert all(own[n] != pytest.approx(own["natural"]) for n in own if n != "natural")


def test_too_few_held_out_mixtures_are_no_test_of_the_fit(corpus, prose_model, tmp_path, capsys):
    out = tmp_path / "few"
    assert mix(corpus, prose_model, out, "--heldout", "0.25") == 0  # 1 of 5 sampled mixtures held out
    fit = json.loads((out / "mixture.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))["fit"]
    assert fit["heldout_mixtures"] == 1 and fit["heldout_spearman"] is None
    said = "not tested on held-out mixtures: 1 held out, 3 needed (raise --proxies or --heldout)"
    assert said in capsys.readouterr().out and said in (out / "report.html").read_text()


def test_the_schedule_reaches_the_proxies(searched, corpus, prose_model, tmp_path):
    out = tmp_path / "constant"
    assert mix(corpus, prose_model, out, "--schedule", "constant") == 0
    cosine, constant = (json.loads((d / "mixture.json").read_text()) for d in (searched, out))
    assert constant["settings"]["schedule"] == "constant" and cosine["settings"]["schedule"] == "cosine"
    assert constant["validation"]["natural"] != pytest.approx(cosine["validation"]["natural"])
