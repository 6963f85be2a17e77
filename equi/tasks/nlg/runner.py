"""Fairness in language generation (paper §5.1.2, app. C.2, Figures 3 and 9).

For each demographic pair (gender, race, sexuality) and each of Sheng et al.'s five contexts,
every seed completes "The <subject> <context>" for both subjects with 15 new tokens at most
(top-k 40, stopping at a newline or end of text), all seeds, subjects and group views in one
KV-cached batch per step. Methods, all through the one operator:

- vanilla: the LM (the same sampler over the trivial group);
- equitune, EquiLM: the mean of the views' logits at every step, the group swapping the
  equality set E (the pair's words; for gender also the repaired gender word lists);
  ``method.relaxed=true``, R-EquiLM: the general words (he, she, his, her, him) leave E and take
  their logits from the identity view alone (``RelaxedUniform``);
- equizero, EquizeroLM: chunks of k tokens from every g·context, mapped back by g⁻¹, the one
  with the best regard kept (ties: the larger sum of token probabilities); ``method.relaxed=true``,
  R-EquizeroLM: the same with the relaxed group (general words are not swapped).

Every generation is scored by regard (``task.regard``, with the subject masked as XYZ when
``task.regard_mask``) and by VADER; results give, per pair, the label distributions of both
subjects, their total-variation distance and the mean regard score with bootstrap intervals.
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from ... import distributed, hardware, methods
from ...data import catalog, fairness
from ...data.download import hub_reachable
from ...errors import ConfigError, blame_user
from ..context import RunContext
from ...groups import VocabularyGroup, token_swaps
from ...models import lm as lms
from ...models import regard as regards
from ...operator import EquivariantWrapper
from ...results import package_version, write_text_atomic
from ...sampling import ChunkSampler, RankSampler, RegardProxy, sentence_text
from ...stats import bootstrap_mean
from ...sequence import StepwiseEquivariantDecoder
from ...weighting import ProxyArgmin, RelaxedUniform, Uniform

MODEL_NAMES = {("vanilla", False): "LM", ("equitune", False): "EquiLM", ("equitune", True): "R-EquiLM",
               ("equizero", False): "EquizeroLM", ("equizero", True): "R-EquizeroLM"}


def model_name(method: DictConfig) -> str:
    return MODEL_NAMES[(method.name, bool(method.get("relaxed", False)))]


def stop_ids(tokenizer) -> list[int]:
    """End of text and every token that contains a newline."""
    newline = [i for i in range(len(tokenizer)) if "\n" in tokenizer.decode([i])]
    return sorted({*tokenizer.all_special_ids, *newline} - {None})


def pair_group(task: DictConfig, name: str, tokenizer, vocab: int, data_dir, relaxed: bool) -> tuple[VocabularyGroup, list[int], list[str]]:
    """The pair's group (swapping E), the general words' token ids, and notes on left-out words."""
    spec = task.demographics[name]
    words = [tuple(spec.words)]
    notes: list[str] = []
    if spec.word_lists:
        listed, notes = fairness.gender_pairs(data_dir / catalog.DATASETS["gender_words"].folder)
        words += [p for p in listed if p not in words]
    general = set(task.general_words)
    if relaxed:
        words = [(a, b) for a, b in words if a not in general and b not in general]
    forms = fairness.surface_forms(words, task.capitalized)
    with blame_user(f"task.demographics.{name}", ConfigError):
        ids, left_out = fairness.single_token_pairs(tokenizer, forms, required=[(f" {spec.words[0]}", f" {spec.words[1]}")])
    general_forms = [f for w in sorted(general) for f in fairness.surface_forms([(w, w)], task.capitalized)]
    general_ids = [t[0] for t in (tokenizer.encode(a, add_special_tokens=False) for a, _ in general_forms) if len(t) == 1]
    return token_swaps(vocab, ids, name=f"{name}_swaps"), general_ids, notes + left_out


def draws(task: DictConfig, seed: int, n_contexts: int, streams: int) -> torch.Tensor:
    """Uniform draws (samples, contexts, streams, new tokens), shared by both subjects of a pair."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand((task.samples_per_context, n_contexts, streams, task.max_new_tokens), generator=gen)


def generate(method: DictConfig, task: DictConfig, step_lm, group: VocabularyGroup, general: list[int],
             prompt_ids: torch.Tensor, subject_tokens: list[int], u: torch.Tensor, proxy: RegardProxy | None,
             stops: list[int]) -> torch.Tensor:
    """New token ids (B, max_new_tokens) for prompts (B, L) with draws u (B, streams, T)."""
    if not methods.method_of(method).picks_a_view:  # the mean of the views' logits (vanilla: one view)
        weighting = RelaxedUniform(general) if method.get("relaxed") else Uniform()
        decoder = StepwiseEquivariantDecoder(step_lm, group, weighting, eos_id=stops[0], pad_id=stops[0],
                                             max_len=task.max_new_tokens, average="logits",
                                             choose=RankSampler(u[:, 0], task.top_k), stop_ids=stops)
        tokens = decoder.generate(prompt_ids, keep_scores=False)[1]
        return torch.nn.functional.pad(tokens, (0, task.max_new_tokens - tokens.shape[1]), value=stops[0])
    sampler = ChunkSampler(step_lm, group, task.chunk, task.top_k, stops)
    operator = EquivariantWrapper(sampler, group, ProxyArgmin(proxy, straight_through=False))
    ids = prompt_ids
    for start in range(0, task.max_new_tokens, task.chunk):
        sampler.use_draws(u[:, :, start : start + task.chunk])
        proxy.use_prefix(ids, subject_tokens, task.regard_mask)
        ids = torch.cat([ids, operator(ids).argmax(-1)], dim=1)
    return ids[:, prompt_ids.shape[1] : prompt_ids.shape[1] + task.max_new_tokens]


def cut(tokens: list[int], stops: set[int]) -> list[int]:
    for i, t in enumerate(tokens):
        if t in stops:
            return tokens[:i]
    return tokens


def regard_scorer(task: DictConfig, model, tokenizer, ctx: RunContext):
    if task.regard == "vader":
        return regards.Vader()
    if task.regard == "standin":
        folder = ctx.data_dir / catalog.DATASETS["regard"].folder
        made_from = {"lm": lms.fingerprint(task.lm, ctx.fingerprints),
                     "annotations": regards.annotations_fingerprint(folder, ctx.fingerprints)}
        return regards.standin(model, tokenizer, task.lm, folder, ctx.cache_dir,
                                OmegaConf.to_container(task.regard_standin), made_from)
    return regards.HubRegard(task.regard, ctx.download, ctx.device)


def distribution(labels: np.ndarray) -> dict[str, float]:
    return {name: float((labels == value).mean()) for value, name in fairness.LABELS.items()}


def summarize(rows: list[dict], scorer_key: str, task: DictConfig, seed: int) -> dict:
    """Per subject: label distribution and mean score (bootstrap CI, the same resamples for both
    subjects); the pair's TV distance."""
    by_subject = [np.array([r[scorer_key] for r in rows if r["subject"] == s]) for s in range(2)]
    dists = [distribution(labels) for labels in by_subject]
    scores = [np.array([regards.SCORE[int(l)] for l in labels]) for labels in by_subject]
    tv = 0.5 * sum(abs(dists[0][k] - dists[1][k]) for k in dists[0])
    return {"subjects": [rows_subject(rows, s) for s in range(2)], "distribution": dists,
            "mean_score": [bootstrap_mean(s, task.bootstrap, np.random.default_rng(seed)) for s in scores], "tv_distance": tv,
            "n": [len(labels) for labels in by_subject]}


def rows_subject(rows: list[dict], s: int) -> str:
    return next(r["subject_text"] for r in rows if r["subject"] == s)


def inputs(cfg: DictConfig, ctx: RunContext) -> dict:
    """The LM, the regard classifier's weights or annotations, and the word lists when used."""
    task, prints = cfg.task, ctx.fingerprints
    found = {"lm": lms.fingerprint(task.lm, prints)}
    if any(task.demographics[p].word_lists for p in task.pairs):
        found["gender_words"] = prints.folder(catalog.ensure("gender_words", ctx.data_dir, ctx.download))
    if task.regard == "standin":
        folder = catalog.ensure("regard", ctx.data_dir, ctx.download)
        found["regard"] = f"standin {regards.annotations_fingerprint(folder, prints)}"
    elif task.regard == "vader":
        found["regard"] = f"vader {package_version('vaderSentiment')}"
    else:
        found["regard"] = lms.hub_snapshot(task.regard)
    return found


def preflight(task: DictConfig, ctx: RunContext) -> None:
    """Data (fetched when missing) and regard weights checked before the LM loads: a missing one is one
    line, no work lost."""
    if any(task.demographics[p].word_lists for p in task.pairs):
        fairness.read_word_lists(catalog.ensure("gender_words", ctx.data_dir, ctx.download))
    if task.regard == "standin":
        folder = catalog.ensure("regard", ctx.data_dir, ctx.download)
        for split in regards.SPLITS:
            regards.read_annotations(folder, split)
    elif task.regard != "vader" and not lms.hub_cached(task.regard) and not (ctx.download and hub_reachable()):
        raise regards.missing_hub_regard(task.regard)


def run(cfg: DictConfig, ctx: RunContext) -> dict:
    task, method = cfg.task, cfg.method
    start = time.time()
    preflight(task, ctx)
    model, tokenizer = lms.load(task.lm, ctx.cache_dir, ctx.download, cfg.seed)
    model = model.to(ctx.device)
    scorer = regard_scorer(task, model, tokenizer, ctx)
    vader = regards.Vader()
    vocab = model.get_output_embeddings().weight.shape[0]
    stops = stop_ids(tokenizer)
    contexts = fairness.CONTEXTS[task.context]
    step_lm = lms.StepLM(model)
    relaxed = bool(method.get("relaxed", False))
    kind = methods.method_of(method)
    rows, pairs, seeds = [], {}, distributed.shard(task.samples_per_context)
    samples = ctx.run_dir / "samples.jsonl"
    for pair in task.pairs:
        group, general, notes = pair_group(task, pair, tokenizer, vocab, ctx.data_dir, relaxed)
        fairness.warn_all(notes, f"{pair} words")
        sampling_group = group if kind.symmetrises else token_swaps(vocab, [], name="identity")
        proxy = RegardProxy(scorer, tokenizer, stops, group) if kind.picks_a_view else None
        u_all = draws(task, cfg.seed, len(contexts), sampling_group.order)
        spec = task.demographics[pair]
        pair_rows = []
        for c, context in enumerate(tqdm(contexts, desc=f"{model_name(method)} {pair}", unit="context")):
            subjects = [fairness.subject_text(spec.subject, w) for w in spec.words]
            texts = [f"{subjects[s]} {context}" for s in range(2) for _ in seeds]
            encoded = [tokenizer.encode(t) for t in texts]
            if len({len(e) for e in encoded}) != 1:
                raise ConfigError(f"task.demographics.{pair}: the two subjects' prompts tokenize to different lengths")
            prompt_ids = torch.tensor(encoded, device=ctx.device)
            u = torch.cat([u_all[seeds.start : seeds.stop, c]] * 2)  # both subjects draw alike
            batch_subjects = [len(tokenizer.encode(subjects[s])) for s in range(2) for _ in seeds]
            with torch.no_grad(), hardware.autocast():
                new = generate(method, task, step_lm, sampling_group, general, prompt_ids, batch_subjects, u, proxy, stops)
            new = distributed.gather(new.cpu().reshape(2, len(seeds), -1), dim=1)  # (subjects, all seeds, T)
            for s in range(2):
                prompt = encoded[0 if s == 0 else -1]
                for seed, tokens in enumerate(new[s].tolist()):
                    kept = cut(tokens, set(stops))
                    pair_rows.append({"pair": pair, "subject": s, "subject_text": subjects[s], "context": context,
                                      "seed": seed, "prompt_tokens": prompt, "tokens": kept,
                                      "text": tokenizer.decode(prompt + kept, skip_special_tokens=True)})
        if not distributed.is_main():
            continue
        masked = [sentence_text(tokenizer, r["prompt_tokens"] + r["tokens"], r["subject_text"], task.regard_mask)
                  for r in pair_rows]
        for r, label, sentiment in zip(pair_rows, scorer.labels(masked), vader.labels([r["text"] for r in pair_rows])):
            r["regard"], r["vader"] = int(label), int(sentiment)
        pairs[pair] = {"regard": summarize(pair_rows, "regard", task, cfg.seed),
                       "vader": summarize(pair_rows, "vader", task, cfg.seed),
                       "swapped": swap_rate(pair_rows, group), "group_order": group.order,
                       "swapped_tokens": int((group.input_action.perms[1] != torch.arange(vocab)).sum()),
                       "general_tokens": len(general) if relaxed else 0, "left_out_words": notes}
        rows += pair_rows
    if not distributed.is_main():
        return {}
    write_text_atomic(samples, "".join(json.dumps(r) + "\n" for r in rows))
    tv = [p["regard"]["tv_distance"] for p in pairs.values()]
    positive = np.mean([r["regard"] == 1 for r in rows])
    return {"tv_distance": float(np.mean(tv)), "positive_fraction": float(positive), "pairs": pairs,
            "model": model_name(method), "lm": task.lm, "regard_scorer": scorer.name,
            "regard_report": getattr(scorer, "report", None), "generations": len(rows), "samples": str(samples),
            "seconds": time.time() - start}


def swap_rate(rows: list[dict], group: VocabularyGroup) -> float:
    """Fraction of (seed, context) whose second-subject generation is g·(the first subject's):
    1 for EquiLM and EquizeroLM by construction, below 1 for the LM and the relaxed variants."""
    first = {(r["seed"], r["context"]): r["tokens"] for r in rows if r["subject"] == 0}
    hits = [group.act_input(1, torch.tensor(first[(r["seed"], r["context"])], dtype=torch.long)).tolist() == r["tokens"]
            for r in rows if r["subject"] == 1]
    return float(np.mean(hits)) if hits else float("nan")

