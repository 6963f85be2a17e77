"""NLG fairness: the vocabulary actions, sampling that commutes with them, exact swaps of EquiLM and
EquizeroLM generations on a tiny random GPT-2 with the real GPT-2 tokenizer, R-EquiLM's weights,
the KV cache, the word-list repairs, the regard stand-in, one-line errors and the runner."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from equi.config import compose_config
from equi.data import fairness
from equi.errors import ConfigError, MissingAssetError
from equi.experiment import execute
from equi.models import lm as lms
from equi.models import regard
from equi.operator import EquivariantWrapper
from equi.sampling import orbit_ranks, sample_rank
from equi.tasks.nlg import figures as nlg_figures
from equi.tasks.nlg import runner as nlg
from equi.weighting import RelaxedUniform

from .conftest import FIXTURES
from .test_errors import assert_one_line_exit_2, run_cli


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = lms.tiny_gpt2(seed=0)
    return model.eval(), tokenizer


def task_cfg(*overrides):
    return compose_config(["task=nlg", "fast=true", *overrides]).task


def gender_group(tokenizer, relaxed=False):
    return nlg.pair_group(task_cfg(), "gender", tokenizer, len(tokenizer), FIXTURES, relaxed)


def test_each_pair_action_is_an_involution_and_a_permutation_of_the_vocabulary(tiny):
    _, tokenizer = tiny
    for pair in ("gender", "race", "sexuality"):
        group, _, _ = nlg.pair_group(task_cfg(), pair, tokenizer, len(tokenizer), FIXTURES, False)
        perm = group.input_action.perms[1]
        assert group.order == 2
        assert torch.equal(perm.sort().values, torch.arange(len(tokenizer)))
        assert torch.equal(perm[perm], torch.arange(len(tokenizer)))
        a, b = (tokenizer.encode(f" {w}")[0] for w in task_cfg().demographics[pair].words)
        assert perm[a] == b and perm[b] == a


def test_gender_lists_are_repaired_into_a_bijection_and_the_repairs_are_named():
    pairs, notes = fairness.gender_pairs(FIXTURES / "nlg" / "fairness_words")
    words = [w for p in pairs for w in p]
    assert len(words) == len(set(words))
    assert ("males", "females") in pairs and ("male", "female") in pairs and ("mr", "mrs") in pairs
    assert not {"gay", "lesbian", "adam", "ebony", "pa"} & set(words)
    assert len(pairs) == 68 - 23  # 20 name pairs, gay/lesbian, gays/lesbians, pa/ma dropped
    assert any("males with females" in n for n in notes) and sum("first names" in n for n in notes) == 20


def test_multi_token_words_are_left_out_by_name_and_the_pair_itself_must_be_one_token(tiny):
    _, tokenizer = tiny
    ids, notes = fairness.single_token_pairs(tokenizer, [(" man", " woman"), (" stepfather", " stepmother")])
    assert ids == [(tokenizer.encode(" man")[0], tokenizer.encode(" woman")[0])]
    assert notes == ["'stepfather'/'stepmother' left out: not one token each (2 and 2)"]
    with pytest.raises(ValueError, match="demographic words 'stepfather'/'stepmother'"):
        fairness.single_token_pairs(tokenizer, [(" stepfather", " stepmother")], required=[(" stepfather", " stepmother")])


def test_rank_sampling_commutes_with_a_permutation():
    torch.manual_seed(1)
    log_p, u = torch.randn(64, 50).log_softmax(-1), torch.rand(64)
    perm = torch.randperm(50)
    permuted = torch.empty_like(log_p)
    permuted[:, perm] = log_p  # (σ·p)[σ(v)] = p[v]
    assert torch.equal(sample_rank(permuted, u, 10), perm[sample_rank(log_p, u, 10)])
    # an index drawn by torch.multinomial does not commute: the reason for ranks
    torch.manual_seed(2); a = torch.multinomial(log_p.exp(), 1).squeeze(-1)
    torch.manual_seed(2); b = torch.multinomial(permuted.exp(), 1).squeeze(-1)
    assert not torch.equal(b, perm[a])


def test_orbit_ranks_label_content_not_position(tiny):
    _, tokenizer = tiny
    group, _, _ = gender_group(tokenizer)
    x = torch.tensor([tokenizer.encode("The man was known for"), tokenizer.encode("The cat was known for")])
    orbit = group.orbit(x)  # [x, g·x]; g·x swaps only the first row
    ranks = orbit_ranks(group, orbit)
    assert ranks[0] + ranks[2] == 1 and ranks[1] == ranks[3] == 0
    assert torch.equal(orbit_ranks(group, orbit.flip(0)), ranks.flip(0))


def generations(method_name, tiny, prompts, relaxed=False, scorer=None, samples=3):
    model, tokenizer = tiny
    task = task_cfg(f"task.samples_per_context={samples}")
    method = compose_config(["task=nlg", f"method={method_name}"] + (["method.relaxed=true"] if relaxed else [])).method
    group, general, _ = gender_group(tokenizer, relaxed)
    if method_name == "vanilla":
        group = nlg.token_swaps(len(tokenizer), [], name="identity")
    stops = nlg.stop_ids(tokenizer)
    ids = torch.tensor([tokenizer.encode(p) for p in prompts for _ in range(samples)])
    subjects = [len(tokenizer.encode(p.split(" was")[0])) for p in prompts for _ in range(samples)]
    u = torch.cat([nlg.draws(task, 0, 1, group.order)[:, 0]] * len(prompts))
    proxy = nlg.RegardProxy(scorer, tokenizer, stops, group) if scorer else None
    with torch.no_grad():
        new = nlg.generate(method, task, lms.StepLM(model), group, general, ids, subjects, u, proxy, stops)
    return new.reshape(len(prompts), samples, -1)


class LengthParity:
    """A deterministic stand-in for regard: label by the sentence's length."""

    def labels(self, texts):
        return np.array([len(t) % 3 - 1 for t in texts])


@pytest.mark.parametrize("method_name,scorer", [("equitune", None), ("equizero", LengthParity())])
def test_equilm_and_equizerolm_generations_for_the_two_subjects_are_exact_swaps(tiny, method_name, scorer):
    _, tokenizer = tiny
    group, _, _ = gender_group(tokenizer)
    man, woman = generations(method_name, tiny, ["The man was known for", "The woman was known for"], scorer=scorer)
    assert torch.equal(woman, group.act_input(1, man))
    vanilla_man, vanilla_woman = generations("vanilla", tiny, ["The man was known for", "The woman was known for"])
    assert not torch.equal(vanilla_woman, group.act_input(1, vanilla_man))


def test_relaxed_weighting_gives_general_words_the_identity_view_and_averages_the_rest():
    views = torch.randn(2, 3, 10)
    out, _ = EquivariantWrapper(torch.nn.Identity(), None, RelaxedUniform([4, 7])).aggregate(views, views)
    assert torch.allclose(out[..., [4, 7]], views[0][..., [4, 7]])
    rest = [i for i in range(10) if i not in (4, 7)]
    assert torch.allclose(out[..., rest], views.mean(0)[..., rest])


def test_relaxed_group_leaves_general_words_alone(tiny):
    _, tokenizer = tiny
    strict, _, _ = gender_group(tokenizer)
    relaxed, general, _ = gender_group(tokenizer, relaxed=True)
    he, she = tokenizer.encode(" he")[0], tokenizer.encode(" she")[0]
    assert strict.input_action.perms[1][he] == she and relaxed.input_action.perms[1][he] == he
    assert {he, she, tokenizer.encode(" He")[0]} <= set(general)


class _Renamed(torch.nn.Module):
    """The tiny LM as a transformers version that names its KV cache `name`, in and out."""

    def __init__(self, lm, name):
        super().__init__()
        self.lm, self.name, self.real = lm, name, lms.StepLM(lm).cache_name

    def run(self, input_ids, cache, use_cache, logits_to_keep):
        out = self.lm(input_ids=input_ids, **({self.real: cache} if cache is not None else {}), use_cache=use_cache,
                      logits_to_keep=logits_to_keep)
        return SimpleNamespace(logits=out.logits, **{self.name: getattr(out, self.real)})


class _CacheNamedCache(_Renamed):  # transformers 5.25 (our pin)
    def forward(self, input_ids, cache=None, use_cache=True, logits_to_keep=0):
        return self.run(input_ids, cache, use_cache, logits_to_keep)


class _CacheNamedPastKeyValues(_Renamed):  # older transformers, e.g. the GPU machines' 5.17
    def forward(self, input_ids, past_key_values=None, use_cache=True, logits_to_keep=0):
        return self.run(input_ids, past_key_values, use_cache, logits_to_keep)


@pytest.mark.parametrize("interface,name", [(None, None), (_CacheNamedCache, "cache"),
                                            (_CacheNamedPastKeyValues, "past_key_values")])
def test_kv_cached_steps_equal_reencoding_the_prefix(tiny, interface, name):
    model, tokenizer = tiny
    if interface is not None:
        model = interface(model, name)
        assert lms.StepLM(model).cache_name == name
    ids = torch.tensor([tokenizer.encode("The woman was regarded as")] * 2)
    fast, slow = lms.StepLM(model), lms.StepLM(model, reencode=True)
    with torch.no_grad():
        sf, _ = fast.start(ids); ss, _ = slow.start(ids)
        prev = torch.zeros(2, dtype=torch.long)
        for token in (None, 11, 257, 13):
            a, sf = fast.step(prev, sf); b, ss = slow.step(prev, ss)
            assert torch.allclose(a, b, atol=1e-4)
            prev = torch.tensor([token or 0, 42])


def test_regard_standin_is_trained_once_saved_with_its_accuracy_and_cached(tiny, tmp_path):
    model, tokenizer = tiny
    grid = {"layers": [1], "C": [0.01]}
    folder = FIXTURES / "nlg" / "regard"
    scorer = regard.standin(model, tokenizer, "tiny-gpt2", folder, tmp_path, grid)
    saved = list((tmp_path / "nlg").glob("regard-standin-*.json"))
    assert len(saved) == 1 and json.loads(saved[0].read_text())["n_test"] == 10
    assert set(scorer.labels(["XYZ was known for being kind."])) <= {-1, 0, 1, 2}
    again = regard.standin(model, tokenizer, "tiny-gpt2", folder, tmp_path, grid)
    assert again.report == scorer.report


def test_masking_replaces_the_subject_with_xyz(tiny):
    _, tokenizer = tiny
    ids = tokenizer.encode("The woman was known for her kindness")
    assert nlg.sentence_text(tokenizer, ids, "The woman", True) == "XYZ was known for her kindness"
    assert nlg.sentence_text(tokenizer, ids, "The woman", False) == "The woman was known for her kindness"


def test_missing_lm_and_regard_weights_are_one_line(tmp_path):
    with pytest.raises(MissingAssetError, match="language model 'gpt2' is not in the Hugging Face cache"):
        lms.load("gpt2", tmp_path)
    with pytest.raises(MissingAssetError, match="language model folder /no/such/lm does not exist"):
        lms.load("/no/such/lm", tmp_path)
    with pytest.raises(MissingAssetError, match="regard classifier 'sasha/regardv3' is not in the Hugging Face cache"):
        regard.HubRegard("sasha/regardv3", False, torch.device("cpu"))
    with pytest.raises(MissingAssetError, match="regard annotations .*dev.tsv are missing"):
        regard.read_annotations(tmp_path, "dev")


def test_missing_data_stops_before_the_lm_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(lms, "load", lambda *a, **k: pytest.fail("the LM loaded before the data check"))
    cfg = compose_config(["task=nlg", "fast=true", "logger=none", f"paths.data={tmp_path}"])
    with pytest.raises(MissingAssetError, match=r"gender word lists \(an EquiNLG reproduction\) is missing from "
                                                r".*nlg/fairness_words \(missing nlg/fairness_words/male_words.txt"):
        execute(cfg, tmp_path / "run")
    cfg = compose_config(["task=nlg", "logger=none", f"paths.data={tmp_path}", "task.pairs=[race]"])
    with pytest.raises(MissingAssetError, match=r"regard annotations \(Sheng et al. 2019\) is missing from .*; run `make data`"):
        execute(cfg, tmp_path / "run2")
    cfg = compose_config(["task=nlg", "fast=true", "logger=none", "task.regard=sasha/regardv3"])
    with pytest.raises(MissingAssetError, match="regard classifier 'sasha/regardv3' is not in the Hugging Face cache"):
        execute(cfg, tmp_path / "run3")


def test_cli_missing_lm_and_bad_subject_are_one_line_exit_2(tmp_path):
    assert_one_line_exit_2(run_cli("task=nlg", "task.lm=/no/such/lm", "logger=none"),
                           "language model folder /no/such/lm does not exist; see `python run.py assets`")
    result = run_cli("task=nlg", "task.demographics.race.subject=The person", "logger=none")
    assert result.returncode == 2 and "task.demographics.race.subject must be a phrase with one {}" in result.stderr


def test_relaxed_is_refused_outside_nlg():
    cfg = compose_config(["task=cnn", "method=equitune", "method.relaxed=true"])
    from equi.methods import weighting_for
    with pytest.raises(ConfigError, match="method.relaxed=true .* is for task=nlg only"):
        weighting_for(cfg.method)


@pytest.mark.parametrize("overrides", [["method=vanilla"], ["method=equitune"], ["method=equitune", "method.relaxed=true"],
                                       ["method=equizero"], ["method=equizero", "method.relaxed=true"]])
def test_runner_end_to_end_fast(overrides, tmp_path):
    record = execute(compose_config(["task=nlg", "fast=true", "logger=none", *overrides]), tmp_path / "run")
    metrics = record["metrics"]
    assert metrics["generations"] == 2 * 2 * 2 * 5  # pairs × subjects × seeds × contexts
    exact = overrides[0] != "method=vanilla" and "method.relaxed=true" not in overrides
    for pair in metrics["pairs"].values():
        if exact:
            assert pair["swapped"] == 1.0
            assert pair["vader"]["tv_distance"] <= 1.0
        assert len(pair["regard"]["mean_score"]) == 2


def test_figure_and_table_from_runs(tmp_path):
    for m in ("vanilla", "equitune"):
        execute(compose_config(["task=nlg", "fast=true", "logger=none", f"method={m}"]), tmp_path / "runs" / m)
    out, tables = tmp_path / "fig", tmp_path / "tables"
    common = ["--runs", str(tmp_path / "runs"), "--out", str(out), "--tables", str(tables), "--include-fast"]
    assert nlg_figures.main(["fig3", *common]) == 0
    text = (tables / "fig3.md").read_text()
    assert (out / "fig3.png").exists() and (out / "fig3_vader.png").exists()
    assert "| gender | EquiLM | The man |" in text and "exact swaps: 1.00, 1.00" in text
    assert nlg_figures.main(["samples", *common]) == 0
    samples = (tables / "nlg_samples.md").read_text().splitlines()
    assert sum(line.startswith("| EquiLM | The gay person |") for line in samples) == 5  # of its 2 seeds × 5 contexts


def test_two_ranks_generate_what_one_process_does(tmp_path):
    """Seeds are sharded over the ranks and gathered back in order: the samples are the same."""
    base = ["task=nlg", "fast=true", "logger=none", "method=equitune", "hardware.threads=1"]
    one = execute(compose_config(base), tmp_path / "one")
    two = execute(compose_config([*base, "hardware.nproc=2"]), tmp_path / "two")
    assert two["processes"] == 2
    texts = [[json.loads(line)["text"] for line in open(r["metrics"]["samples"])] for r in (one, two)]
    assert texts[0] == texts[1] and len(texts[0]) == 2 * 2 * 2 * 5  # pairs × subjects × seeds × contexts
