"""Builds the bundled sample corpus, `refsift/data/sample/*.jsonl.gz`, from the bundled slices.

Eight documents from each of six domains, one file per domain (the file stem is the
`source`), plus a few malformed records in `web.jsonl.gz` so that the default run shows
rejection at work. Run from the repository root: `python tools/make_sample.py`.
"""

from pathlib import Path

from refsift.demo import corpora

OUT = Path("refsift/data/sample")
DOMAINS = {"prose": "prose", "drama": "drama", "german": "german", "code": "code", "math": "math", "spanish": "spanish"}
PER_DOMAIN = 8


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, domain in DOMAINS.items():
        docs = corpora.documents(domain, target_chars=1200)[-PER_DOMAIN:]  # the slice's end: far from test data
        corpora.write_jsonl(OUT / f"{name}.jsonl.gz", corpora.numbered(docs, name))
    junk = [
        '{"id": "web-0", "text": "Buy now!!! Click here for the best deals on the web. Buy now!!!"}',
        '{"id": "web-1", "text": "   "}',
        '{"id": "web-2", "text": "an unterminated record',
        '{"id": "prose-0", "text": "A second document that reuses an id seen in prose.jsonl.gz."}',
    ]
    corpora.write_jsonl(OUT / "web.jsonl.gz", [], raw_lines=junk)


if __name__ == "__main__":
    main()
