"""The demo at reduced size: the story's claims that could fail, and the pages it writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.browser import open_page


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """The demo as `refsift demo` runs it: in a process of its own. Its tiny models end where
    float sums and random draws take them, so it must not inherit a test process's thread
    count (one, when the tests run in parallel) or state. The demo's own size: tiny models
    trained for fewer steps learn too little of the leaked slice for contrastive generation to
    find it reliably (checked over seeds)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    saved = out.parent / "result.json"
    script = (
        "import json, sys\nfrom refsift.demo import tour as demo\nlines = []\n"
        "numbers = demo.run(sys.argv[1], size=demo.FULL, echo=lines.append)\n"
        "json.dump({'numbers': numbers, 'lines': lines}, open(sys.argv[2], 'w'))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    proc = subprocess.run([sys.executable, "-c", script, str(out), str(saved)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    done = json.loads(saved.read_text())
    return out, done["numbers"], done["lines"]


def test_target_domain_has_the_highest_mean_excess_loss(result):
    _, numbers, _ = result
    excess = numbers["mean_excess_by_source"]
    assert max(excess, key=excess.get) == "math", excess


def test_selection_over_represents_the_target_domain(result):
    _, numbers, _ = result
    share = numbers["target_share"]
    assert share["selection"] > share["corpus"] + 0.1, share


def test_cge_surfaces_the_leaked_slice_and_iterative_cge_spreads(result):
    _, numbers, _ = result
    shares = numbers["novelty_shares"]
    leak = "es_offensive"
    # Checked over seeds 0, 1 and 2 (static leak share 100% each time against 8/4/21% of plain samples;
    # iterative 33/38/25%, in 4 or 5 domains).
    assert shares["cge"].get(leak, 0) > shares["baseline"].get(leak, 0) + 0.15, shares
    # Iterative CGE finds the leak too, then spreads over more of what is new than static CGE. (Its leak
    # share against plain samples' is within sampling noise at 24 samples: 21% vs 12% with transformers
    # 5.24, 17% vs 17% with 5.25; the demo does not claim an order there.)
    assert shares["cge-iterative"].get(leak, 0) > 0, shares
    assert len(shares["cge-iterative"]) > len(shares["cge"]), shares


def test_attribution_names_the_leaked_source(result):
    _, numbers, lines = result
    # Samples that read as the leak are attributed to the leaked forum posts, among six sources; over all
    # samples the forum posts rank in the first two (math, which the selection favoured, can lead when
    # iterative CGE spreads into it), and German, never in the fine-tuning set, never first.
    leak_groups = [g for g in numbers["attribution_by_group"] if g["domain"] == "es_offensive" and g["sources"]]
    assert all(g["sources"] or g["samples"] < 2 for g in numbers["attribution_by_group"])
    assert len(numbers["attribution_by_group"]) == len([line for line in lines if line.startswith("   group ")])
    assert leak_groups and all(g["sources"][0] == "forum" for g in leak_groups), numbers["attribution_by_group"]
    assert "forum" in numbers["attribution"][:2] and numbers["attribution"][0] != "german", numbers["attribution"]
    assert any("where it came from" in line for line in lines)


def test_demo_prints_every_artefact_and_they_exist(result):
    out, numbers, lines = result
    text = "\n".join(lines)
    for name, path in numbers["artefacts"].items():
        assert path in text and Path(path).exists(), name
    assert "rejected 3" in text  # the three malformed web records
    selection = json.loads((out / "mix" / "selection.json").read_text())
    # three repeats of one boilerplate page, and three copies of prose documents (the prose ids sort first)
    assert selection["per_source"]["web"]["duplicates"]["documents"] == 6


def test_run_report_and_index_render_offline(result):
    out, numbers, _ = result
    for page in (out / "run" / "report.html", out / "index.html"):
        seen = open_page(page)
        assert seen["requests"] == [page.resolve().as_uri()], seen["requests"]
        assert seen["console"] == [] and seen["errors"] == [] and seen["dialogs"] == [] and seen["scripts"] == 0
    seen = open_page(out / "run" / "report.html")
    assert "nll_model against nll_reference" in seen["text"]
    # the page leads with its finding: the source the reference finds easiest, the one the excess loss favours
    assert seen["text"].index("Finding. math (mean excess_loss") < seen["text"].index("Rejected records")
    index = open_page(out / "index.html")["text"]
    assert index.index("Findings.") < index.index("What ran")
    for finding in numbers["findings"].values():
        assert " ".join(finding.split()) in " ".join(index.split())
    assert "invalid_json" in seen["text"] and "selection_mix" in seen["text"]
    made = f"Made by refsift select {out}/run --out {out}/mix --tokens excess --ratio 0.6"
    assert made in seen["text"] and "--mix math=0.4,prose=0.3,code=0.15,drama=0.15" in seen["text"]
