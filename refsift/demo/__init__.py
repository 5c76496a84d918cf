"""The demo and what it is built from: text bundled with the package (`corpora`), tiny
models and tokenizers trained in seconds on the CPU (`tiny`), a small domain classifier
(`domains`), and the scripted tour that `refsift demo` runs over the Python API (`tour`).
Tests and benchmarks build their models and corpora from here too."""
