"""The command line end to end: import (all or nothing), generate with a tiny model, assign, label
through the API, export every format under both aggregations, alignkit's loaders read the export and
`alignkit rm` trains on it;
aggregation and the simulator on their own."""

import json

import pytest
from annotate_helpers import PASSWORD, login
from fastapi.testclient import TestClient
from helpers import write_jsonl

from alignkit.annotate.app import create_app
from alignkit.annotate.export import aggregate_ranks, bradley_terry_strengths, pair_votes
from alignkit.cli import main
from alignkit.data.records import PreferencePair, Ranking, UnpairedFeedback

# Labels below: a and b rank [1, 3, 2], c ranks [2, 1, 3]. By majority every pair of every item has a
# winner (9 pairs), but mean ranks tie responses 2 and 3 (4/3, 7/3, 7/3); Bradley-Terry strengths depend
# only on win totals, and responses 2 and 3 each win twice, so they tie too (6 pairs). Both count as
# worst for unpaired feedback.
EXPECTED = {("pairs", "majority"): 9, ("pairs", "bradley-terry"): 6, ("ranking", "majority"): 3,
            ("ranking", "bradley-terry"): 3, ("unpaired", "majority"): 9, ("unpaired", "bradley-terry"): 9}


def test_import_label_export_and_load(tmp_path, monkeypatch, capsys, tiny_model_dir):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    monkeypatch.setenv("ALIGNKIT_ANNOTATE_PASSWORD", PASSWORD)
    for name in ("a", "b", "c"):
        assert main(["annotate", "create-user", "--db", db, "--username", name]) == 0
    rows = [{"prompt": f"q{i}", "responses": [f"good {i}", f"bad {i}", f"meh {i}"]} for i in range(3)]
    bad = write_jsonl(tmp_path / "bad.jsonl", [*rows, {"prompt": "q", "responses": "not a list"}])
    assert main(["annotate", "import", "--db", db, "--project", "p", "--overlap", "3", str(bad)]) == 2
    assert f"{bad}:4: 'responses' must be a list of non-blank strings" in capsys.readouterr().err
    good = write_jsonl(tmp_path / "good.jsonl", rows)
    assert main(["annotate", "import", "--db", db, "--project", "p", "--overlap", "3", str(good)]) == 0
    assert "imported 3 items" in capsys.readouterr().out
    assert main(["annotate", "assign", "--db", db, "--project", "p", "--annotators", "a,b,c"]) == 0
    app = create_app(db)
    for name, ranks in (("a", [1, 3, 2]), ("b", [1, 3, 2]), ("c", [2, 1, 3])):
        client = TestClient(app)
        client.headers["X-CSRF-Token"] = login(client, name)
        for item in (1, 2, 3):
            assert client.post(f"/api/items/{item}/labels", json={"ranks": ranks, "idempotency_key": str(item)}
                               ).status_code == 201
    loaders = {"pairs": PreferencePair, "ranking": Ranking, "unpaired": UnpairedFeedback}
    for fmt, record_type in loaders.items():
        for aggregate in ("majority", "bradley-terry"):
            out = tmp_path / f"{fmt}-{aggregate}.jsonl"
            assert main(["annotate", "export", "--db", db, "--project", "p", "--format", fmt, "--out", str(out),
                         "--aggregate", aggregate]) == 0
            records = [record_type.from_row(json.loads(line), f"{out}:{n}")
                       for n, line in enumerate(out.read_text().splitlines(), 1)]
            assert len(records) == EXPECTED[fmt, aggregate]
    pairs = [json.loads(line) for line in (tmp_path / "pairs-majority.jsonl").read_text().splitlines()]
    assert pairs[0] == {"prompt": [{"role": "user", "content": "q0"}], "chosen": "good 0", "rejected": "bad 0",
                        "label": pytest.approx(2 / 3)}
    assert [json.loads(line)["ranks"] for line in (tmp_path / "ranking-majority.jsonl").read_text().splitlines()] \
        == [[1, 2, 2]] * 3  # mean ranks 4/3, 7/3, 7/3
    assert main(["annotate", "export", "--db", db, "--project", "nope", "--format", "pairs",
                 "--out", str(tmp_path / "x.jsonl")]) == 2
    for fmt, data_format in (("pairs", "pairs"), ("ranking", "rankings")):  # alignkit rm trains on the exports
        run = tmp_path / f"rm-{fmt}"
        settings = [f"output_dir={run}", f"model.name={tiny_model_dir}", f"data.train={tmp_path}/{fmt}-majority.jsonl",
                    "data.eval_fraction=0", f"reward.data_format={data_format}", "train.batch_size=3",
                    "train.micro_batch_size=3", "train.max_steps=2"]
        assert main(["rm", *[arg for setting in settings for arg in ("--set", setting)]]) == 0, capsys.readouterr().err
        assert (run / "model" / "model.safetensors").exists()


def test_aggregation_by_majority_and_bradley_terry():
    rankings = [[1, 2, 3], [1, 2, 3], [2, 1, 3]]
    assert pair_votes(rankings, 0, 1) == (2, 1, 0)
    assert aggregate_ranks(rankings, "majority") == [1, 2, 3]
    strengths = bradley_terry_strengths(rankings)
    assert strengths[0] > strengths[1] > strengths[2]
    assert sum(strengths) == pytest.approx(0, abs=1e-6)  # the L2 prior centres them
    assert bradley_terry_strengths([[1, 1]]) == pytest.approx([0.0, 0.0], abs=1e-6)


def test_generate_samples_k_responses_with_a_tiny_model(tmp_path, tiny_model_dir, capsys):
    db = f"sqlite:///{tmp_path / 'g.db'}"
    prompts = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "Hello"}, {"prompt": "Tell me a story"}])
    code = main(["annotate", "generate", "--db", db, "--project", "gen", "--model", str(tiny_model_dir),
                 "--prompts", str(prompts), "--k", "2", "--max-new-tokens", "6", "--kind", "pairwise"])
    assert code == 0, capsys.readouterr().err
    assert "generated and imported 2 items into gen" in capsys.readouterr().out


def test_simulator_moves_rewards_and_dpo_logprobs_toward_the_ranking(tiny_model_dir):
    from alignkit.annotate.simulator import Simulator

    simulator = Simulator(str(tiny_model_dir), rm_steps=10, rm_lr=0.05, dpo_lr=0.5)
    result = simulator.update("Pick one", ["river stone", "cloud paper", "music garden"], [1, 3, 2])
    assert result.pairs == [(0, 1), (0, 2), (2, 1)]
    assert result.rm_loss_after < result.rm_loss_before
    margin = [result.rewards_after[0] - result.rewards_after[1], result.rewards_before[0] - result.rewards_before[1]]
    assert margin[0] > margin[1]
    gap_before = result.logp_before[0] - result.logp_before[1]
    gap_after = result.logp_after[0] - result.logp_after[1]
    assert gap_after > gap_before  # one DPO step raises the best response relative to the worst
    assert result.dpo_loss == pytest.approx(0.6931, abs=1e-3)  # log 2 with the reference = the policy


def test_simulator_page(tmp_path, tiny_model_dir):
    db = f"sqlite:///{tmp_path / 's.db'}"
    from annotate_helpers import seed

    seed(db, annotators=1, n_items=1, overlap=1)
    client = TestClient(create_app(db, simulator_model=str(tiny_model_dir)))
    token = login(client, "ann0")
    assert "Update the models" in client.get("/simulator").text
    sampled = client.get("/simulator", params={"prompt": "Say hi", "sample": 1})
    assert sampled.status_code == 200 and "Say hi" in sampled.text and 'name="sample" value="2"' in sampled.text
    form = {"csrf_token": token, "prompt": "<b>hi</b>", "response_0": "a", "response_1": "b", "response_2": "c",
            "rank_0": "1", "rank_1": "2", "rank_2": "3"}
    page = client.post("/simulator", data=form)
    assert page.status_code == 200 and 'id="result"' in page.text and "&lt;b&gt;hi&lt;/b&gt;" in page.text
    tied = client.post("/simulator", data={**form, "rank_1": "1", "rank_2": "1"})
    assert tied.status_code == 400
