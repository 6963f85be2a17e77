"""Regard scorers for generated sentences: label −1 negative, 0 neutral, 1 positive, 2 other.

- ``hub``: a regard classifier of Sheng et al. on the Hugging Face hub (``sasha/regardv3``)
  through transformers' text-classification pipeline; its labels are read from ``id2label``.
- ``standin``: offline, a logistic regression on an LM's sentence features (token-mean of the
  layer-mean hidden state, or one layer's), trained on Sheng et al.'s human annotations
  (``train_other.tsv``), its layer and regularisation chosen on ``dev.tsv``, its accuracy on
  ``test.tsv`` saved beside it; cached by LM and settings.
- ``vader``: VADER sentiment (compound ≥ 0.05 positive, ≤ −0.05 negative), a second, different
  scorer: sentiment, not regard.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..cache import checkpoint_path, load_cached, save_atomically
from ..data.download import hub_reachable
from ..errors import MissingAssetError

SCORE = {-1: -1.0, 0: 0.0, 1: 1.0, 2: 0.0}  # a label's regard score; "other" counts as neutral
HUB_LABELS = {"negative": -1, "neutral": 0, "positive": 1, "other": 2}
SPLITS = ("train_other", "dev", "test")


def read_annotations(folder: Path, split: str) -> tuple[list[str], np.ndarray]:
    path = annotation_files(folder)[SPLITS.index(split)]
    if not path.is_file():
        raise MissingAssetError(f"regard annotations {path} are missing (Sheng et al.'s data/regard/, label<TAB>sentence)")
    rows = [line.split("\t", 1) for line in path.read_text().splitlines() if line.strip()]
    return [text for _, text in rows], np.array([int(label) for label, _ in rows])


def missing_hub_regard(model: str) -> MissingAssetError:
    from .lm import hub_folder

    return MissingAssetError(f"regard classifier {model!r} is not in the Hugging Face cache ({hub_folder(model)}); "
                             "it is fetched where the hub answers (download=true), or set task.regard=standin")


class HubRegard:
    name = "regard (hub)"

    def __init__(self, model: str, download: bool, device: torch.device):
        from transformers import pipeline

        from .lm import hub_cached

        download = download and hub_reachable()
        if not download and not hub_cached(model):
            raise missing_hub_regard(model)
        try:
            self.pipe = pipeline("text-classification", model=model, device=device, top_k=1,
                                 model_kwargs={"local_files_only": not download})
        except OSError as err:
            raise MissingAssetError(f"regard classifier {model!r} is not in the Hugging Face cache; "
                                    "it is fetched where the hub answers (download=true), or set task.regard=standin") from err
        names = {i: str(n).lower() for i, n in self.pipe.model.config.id2label.items()}
        unknown = sorted(set(names.values()) - set(HUB_LABELS))
        if unknown:
            raise ValueError(f"regard classifier {model!r} has labels {unknown}, not negative/neutral/positive/other")
        self.name = f"regard ({model})"

    def labels(self, sentences: Sequence[str]) -> np.ndarray:
        return np.array([HUB_LABELS[out[0]["label"].lower()] for out in self.pipe(list(sentences), batch_size=64)])


class LMFeatures:
    """Sentence features from a causal LM's hidden states, for the stand-in classifier."""

    def __init__(self, lm, tokenizer, batch: int = 64):
        self.lm, self.tokenizer, self.batch = lm, tokenizer, batch

    @torch.no_grad()
    def __call__(self, sentences: Sequence[str]) -> np.ndarray:
        """(N, layers + 1, width): each layer's token-mean hidden state."""
        side, self.tokenizer.padding_side = self.tokenizer.padding_side, "right"
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id
        out = []
        try:
            for i in range(0, len(sentences), self.batch):
                enc = [self.tokenizer.encode(s, add_special_tokens=False) for s in sentences[i : i + self.batch]]
                width = max(map(len, enc))
                ids = torch.tensor([e + [pad] * (width - len(e)) for e in enc])
                mask = (torch.arange(width)[None] < torch.tensor([len(e) for e in enc])[:, None]).float()
                hidden = self.lm(input_ids=ids.to(self.lm.device), attention_mask=mask.to(self.lm.device),
                                 output_hidden_states=True, logits_to_keep=1).hidden_states
                m = mask.to(self.lm.device).unsqueeze(-1)
                out.append(torch.stack([(h * m).sum(1) / m.sum(1) for h in hidden], 1).float().cpu())
        finally:
            self.tokenizer.padding_side = side
        return torch.cat(out).numpy()


def select(features: np.ndarray, layer: int | None) -> np.ndarray:
    return features.mean(1) if layer is None else features[:, layer]


class StandinRegard:
    """Logistic regression over LM features; ``fit`` chooses layer and C on dev."""

    name = "regard (stand-in)"

    def __init__(self, features: LMFeatures, clf, layer: int | None, report: dict):
        self.features, self.clf, self.layer, self.report = features, clf, layer, report

    def labels(self, sentences: Sequence[str]) -> np.ndarray:
        return self.clf.predict(select(self.features(list(sentences)), self.layer))

    @classmethod
    def fit(cls, features: LMFeatures, folder: Path, grid: dict) -> "StandinRegard":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        data = {split: read_annotations(folder, split) for split in SPLITS}
        feats = {split: features(texts) for split, (texts, _) in data.items()}
        layers = [None] + [l for l in grid["layers"] if l < feats["dev"].shape[1]]
        best = None
        for layer in layers:
            for c in grid["C"]:
                clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000))
                clf.fit(select(feats["train_other"], layer), data["train_other"][1])
                dev = float((clf.predict(select(feats["dev"], layer)) == data["dev"][1]).mean())
                if best is None or dev > best[0]:
                    best = (dev, layer, c, clf)
        dev, layer, c, clf = best
        test = float((clf.predict(select(feats["test"], layer)) == data["test"][1]).mean())
        report = {"dev_accuracy": dev, "test_accuracy": test, "layer": "mean of all" if layer is None else layer,
                  "C": c, "train": "train_other.tsv", "n_train": len(data["train_other"][1]), "n_test": len(data["test"][1])}
        return cls(features, clf, layer, report)


def annotation_files(folder: Path) -> list[Path]:
    return [folder / f"{split}.tsv" for split in SPLITS]


def annotations_fingerprint(folder: Path, prints) -> str:
    """One fingerprint of the annotations the stand-in is fitted on (`prints`: equi.inputs.Fingerprints)."""
    return prints.files(annotation_files(folder), folder)


def standin(lm, tokenizer, lm_name: str, folder: Path, cache_dir: Path, grid: dict,
            made_from: dict | None = None) -> StandinRegard:
    """The stand-in for this LM, from the cache or trained (seconds) and cached with its accuracy;
    keyed by `made_from` too (the fingerprints of the LM and the annotations)."""
    features = LMFeatures(lm, tokenizer)
    path = checkpoint_path(cache_dir, "nlg", "regard-standin", {"lm": lm_name, **grid}, 0, ".pkl", made_from)
    stored = load_cached(path, lambda p: pickle.loads(p.read_bytes()))
    if stored is not None:
        return StandinRegard(features, *stored)
    scorer = StandinRegard.fit(features, folder, grid)
    save_atomically(path, lambda tmp: tmp.write_bytes(pickle.dumps((scorer.clf, scorer.layer, scorer.report))))
    save_atomically(path.with_suffix(".json"), lambda tmp: tmp.write_text(json.dumps(scorer.report, indent=1)))
    print(f"regard stand-in on {lm_name}: test accuracy {scorer.report['test_accuracy']:.3f} on "
          f"{scorer.report['n_test']} sentences (dev {scorer.report['dev_accuracy']:.3f}); saved {path}")
    return scorer


class Vader:
    name = "sentiment (VADER)"

    def __init__(self):
        try:
            from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
        except ImportError:
            raise MissingAssetError("VADER is not installed (pip install vadersentiment)") from None
        self.analyzer = SentimentIntensityAnalyzer()

    def labels(self, sentences: Sequence[str]) -> np.ndarray:
        compound = np.array([self.analyzer.polarity_scores(s)["compound"] for s in sentences])
        return np.where(compound >= 0.05, 1, np.where(compound <= -0.05, -1, 0))
