import pytest

from seqrec.metrics import cer, error_rate, per, wer


def test_wer_counts_edits_over_reference_words():
    assert wer(["a b c d"], ["a x c"]) == pytest.approx(2 / 4)
    assert wer(["a b", "c"], ["a b", "c"]) == 0.0


def test_cer_normalises_whitespace():
    assert cer(["ab  cd"], ["ab cd"]) == 0.0
    assert cer(["abcd"], ["abed"]) == pytest.approx(0.25)


def test_per_is_token_level():
    assert per(["AH B K"], ["AH K"]) == pytest.approx(1 / 3)


def test_empty_reference():
    assert error_rate([[]], [[]]) == 0.0
    assert error_rate([[]], [["x"]]) == 1.0
    with pytest.raises(ValueError):
        error_rate([["a"]], [])


def test_edit_counts_split_the_edit_distance():
    from seqrec.metrics import edit_counts

    assert edit_counts("a b c d".split(), "a x c".split()) == (1, 1, 0)
    assert edit_counts("a b".split(), "a b c".split()) == (0, 0, 1)
    assert edit_counts([], ["x", "y"]) == (0, 0, 2)
    assert edit_counts(["x", "y"], []) == (0, 2, 0)
    # Equally short alignments: a deletion plus an insertion around a match beat
    # two substitutions.
    assert edit_counts("a b".split(), "b c".split()) == (0, 1, 1)
    assert edit_counts("a b c".split(), "a b c".split()) == (0, 0, 0)


def test_error_breakdown_splits_a_report_by_speaker(tmp_path, capsys, tool):
    import json

    items = [
        {"id": "1", "path": "/d/SPK1/1.wav", "ref": "AH B K", "hyp": "AH K"},
        {"id": "2", "path": "/d/SPK1/2.wav", "ref": "S T", "hyp": "S T IY"},
        {"id": "3", "path": "/d/SPK2/3.wav", "ref": "M N OW", "hyp": "M L OW"},
        {"id": "4", "path": "/d/SPK2/4.wav", "ref": "OW", "hyp": "", "error": "unreadable"},
    ]
    report = {"summary": {"per": 4 / 9, "num_items": 4}, "items": items}
    breakdown_tool = tool("error_breakdown")
    result = breakdown_tool.breakdown(report)
    assert result["unit"] == "token"
    assert result["total"] == {"ref": 9, "sub": 1, "del": 2, "ins": 1}
    refs, hyps = [i["ref"] for i in items], [i["hyp"] for i in items]
    assert breakdown_tool.rate(result["total"]) == pytest.approx(100 * per(refs, hyps))
    assert result["groups"]["SPK1"] == {"ref": 5, "sub": 0, "del": 1, "ins": 1}
    chars = breakdown_tool.breakdown({"summary": {"cer": 0.1}, "items": items[:1]})
    assert chars["total"]["del"] == 2
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    breakdown_tool.main([str(path)])
    out = capsys.readouterr().out
    assert "error 44.44 % = substituted 11.11 % + deleted 22.22 % + inserted 11.11 %" in out
    assert "2 groups, error 40.00-50.00 %" in out
    conf = result["confusions"]
    assert conf["sub"] == {("N", "L"): 1} and conf["del"] == {"B": 1, "OW": 1}
    assert conf["ins"] == {"IY": 1}
    breakdown_tool.main([str(path), "--confusions", "1", "--group", "none"])
    out = capsys.readouterr().out
    assert "  N -> L\t1\t25.0 %" in out and "groups" not in out


def test_error_breakdown_by_the_training_count_of_each_word(tmp_path, capsys, tool):
    import json

    from seqrec.data.manifest import Record, write_manifest

    bt = tool("error_breakdown")
    lexicon = {"A": [["AH"], ["EY"]], "CAT": [["K", "AE", "T"]], "AT": [["AE", "T"]]}
    # Two pronunciations of A; the split must take the one that lets the rest fit.
    assert bt.word_of_each_phone("EY K AE T".split(), ["A", "CAT"], lexicon) == [0, 1, 1, 1]
    assert bt.word_of_each_phone("AH AE T".split(), ["a", "at"], lexicon) == [0, 1, 1]
    assert bt.word_of_each_phone("AH K AE".split(), ["A", "CAT"], lexicon) is None
    assert bt.word_of_each_phone("AH".split(), ["DOG"], lexicon) is None
    items = [
        # CAT's T is heard as IY (one substitution); A and AT are right.
        {"id": "1", "ref": "AH K AE T AE T", "hyp": "AH K AE IY AE T", "ref_words": "A CAT AT"},
        {"id": "2", "ref": "EY", "hyp": "AH", "ref_words": "A"},
        {"id": "3", "ref": "AH", "hyp": "AH"},  # no words: left out
    ]
    counts = bt.Counter({"A": 25, "CAT": 2})
    bands, left_out = bt.by_word_count({"items": items}, counts, lexicon)
    assert left_out == 1
    assert bands["20+ times"] == {"ref": 2, "sub": 1, "del": 0, "ins": 0}
    assert bands["1-4 times"] == {"ref": 3, "sub": 1, "del": 0, "ins": 0}
    assert bands["never"] == {"ref": 2, "sub": 0, "del": 0, "ins": 0}
    assert bt.band(4) == "1-4 times" and bt.band(5) == "5-19 times" and bt.band(0) == "never"
    # From the command line, with the training words from a manifest.
    train = [Record("t1", "t1.wav", "AH", words="a cat"), Record("t2", "t2.wav", "AH", words="A")]
    write_manifest(tmp_path / "train.jsonl", train)
    (tmp_path / "lex.txt").write_text("A AH0\nA EY1\nCAT K AE1 T\nAT AE1 T\n")
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"summary": {"per": 0.3}, "items": items}))
    args = ["--group", "none", "--by-word-count", str(tmp_path / "train.jsonl")]
    bt.main([str(path), *args, "--lexicon", str(tmp_path / "lex.txt")])
    out = capsys.readouterr().out
    assert "(2 items; 1 left out" in out
    assert "  word seen 1-4 times\t5\t40.00 %" in out and "  word seen never\t2\t0.00 %" in out
    with pytest.raises(SystemExit):
        bt.main([str(path), *args])  # --by-word-count needs --lexicon


def test_error_breakdown_bootstrap_intervals_and_paired_comparison(tmp_path, capsys, tool):
    import json
    import re

    bt = tool("error_breakdown")
    items = [
        {"id": "1", "path": "/d/SPK1/1.wav", "ref": "AH B K", "hyp": "AH K"},
        {"id": "2", "path": "/d/SPK1/2.wav", "ref": "S T", "hyp": "S T IY"},
        {"id": "3", "path": "/d/SPK2/3.wav", "ref": "M N OW", "hyp": "M L OW"},
        {"id": "4", "path": "/d/SPK2/4.wav", "ref": "OW", "hyp": "", "error": "unreadable"},
    ]
    report = {"summary": {"per": 4 / 9}, "items": items}
    mine = bt.errors_per_group(bt.breakdown(report)["groups"])
    assert mine == {"SPK1": (5, 2), "SPK2": (4, 2)}
    assert bt.errors_per_group(bt.breakdown(report, group="item")["groups"]) == {
        "1": (3, 1), "2": (2, 1), "3": (3, 1), "4": (1, 1)
    }  # fmt: skip
    # Every draw lies between the two speakers' rates and hits both extremes.
    draws = bt.bootstrap(mine, resamples=400)
    assert draws == sorted(draws) and len(draws) == 400
    assert draws[0] == pytest.approx(40.0) and draws[-1] == pytest.approx(50.0)
    assert bt.percentile_interval([float(i) for i in range(101)]) == (2.0, 98.0)
    # A mixed draw pools the units (8/18 = 44.4 %), not the two rates (45 %).
    assert any(d == pytest.approx(400 / 9) for d in draws)
    assert not any(d == pytest.approx(45.0) for d in draws)
    assert bt.bootstrap(mine, resamples=50, seed=3) == bt.bootstrap(mine, resamples=50, seed=3)
    assert bt.bootstrap(mine, resamples=50, seed=3) != bt.bootstrap(mine, resamples=50, seed=4)
    # A draw of groups without reference units scores 0, like the rate itself.
    assert bt.bootstrap({"A": (0, 3)}, resamples=5) == [0.0] * 5
    # A model right on SPK2 and as wrong on SPK1: no paired draw goes against it,
    # and only draws of SPK1 alone (a quarter) tie.
    better = [dict(i, hyp=i["ref"]) if "SPK2" in i["path"] else i for i in items]
    theirs = bt.errors_per_group(bt.breakdown({"items": better})["groups"])
    diffs = bt.bootstrap(theirs, mine, resamples=400)
    assert all(d <= 0 for d in diffs) and diffs[0] == pytest.approx(-50.0)
    assert 0.65 < sum(d < 0 for d in diffs) / 400 < 0.85
    assert bt.bootstrap(mine, mine, resamples=20) == [0.0] * 20
    with pytest.raises(ValueError, match="at least one group"):
        bt.bootstrap({})
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps({"summary": {"per": 2 / 9}, "items": better}))
    b.write_text(json.dumps(report))
    bt.main([str(a), "--compare", str(b), "--interval", "500"])
    out = capsys.readouterr().out
    assert "95 % interval (500 resamples of 2 groups): 0.00-40.00 %" in out
    assert f"against {b} (44.44 %): difference -22.22 points" in out
    assert 65 < float(re.search(r"this report lower in ([\d.]+) % of resamples", out)[1]) < 85
    bt.main([str(a), "--group", "none", "--interval", "100"])  # items resampled
    assert "95 % interval (100 resamples of 4 items):" in capsys.readouterr().out
    # Reports of different items, or of other references, cannot be paired.
    b.write_text(json.dumps({"items": items[:3]}))
    with pytest.raises(SystemExit, match="different items"):
        bt.main([str(a), "--compare", str(b)])
    b.write_text(json.dumps({"items": [dict(items[0], ref="AH")] + items[1:]}))
    with pytest.raises(SystemExit, match="another reference"):
        bt.main([str(a), "--compare", str(b)])
    # ... nor reports that put an item under another speaker.
    b.write_text(json.dumps({"items": [dict(items[0], path="/d/SPK9/1.wav")] + items[1:]}))
    with pytest.raises(SystemExit, match="'1' is in group 'SPK1' in one report and 'SPK9'"):
        bt.main([str(a), "--compare", str(b)])
    # The other report is scored in this one's units: a character-model summary
    # on the same items does not turn its phones into characters.
    b.write_text(json.dumps({"summary": {"cer": 0.5}, "items": items}))
    bt.main([str(a), "--compare", str(b), "--interval", "50"])
    assert f"against {b} (44.44 %): difference -22.22 points" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bt.main([str(a), "--interval", "-5"])
    assert "--interval must be 0" in capsys.readouterr().err
    one = tmp_path / "one.json"
    one.write_text(json.dumps({"items": items[:2]}))
    bt.main([str(one), "--interval", "100"])
    assert "no interval: resampling needs at least 2 groups, the report has 1" in (
        capsys.readouterr().out
    )
