"""Pronunciation lexicons and phone strings segmented back into words."""

from __future__ import annotations

import pytest

from seqrec.lexicon import DIGIT_LEXICON, DIGIT_WORDS, read_lexicon, words_from_phones


def _phones(*words: str) -> list[str]:
    return [p for w in words for p in DIGIT_LEXICON[w][0]]


def test_digit_lexicon():
    assert DIGIT_WORDS == tuple(DIGIT_LEXICON)
    assert len(DIGIT_WORDS) == 10 and DIGIT_LEXICON["SEVEN"] == [["S", "EH", "V", "AH", "N"]]


def test_read_lexicon(tmp_path):
    path = tmp_path / "lexicon.txt"
    path.write_text(
        ";;; a CMUdict comment\n"
        "zero\tZ IH1 R OW0\n"
        "ZERO(2)  Z IY1 R OW0\n"
        "ZERO Z IH0 R OW2\n"
        "\n"
        "FOUR 0.5 F AO1 R\n"
        "K_WORD K_B AO0_I L_E\n"
    )
    lex = read_lexicon(path)
    assert lex["ZERO"] == [["Z", "IH", "R", "OW"], ["Z", "IY", "R", "OW"]]
    assert lex["FOUR"] == [["F", "AO", "R"]]
    assert lex["K_WORD"] == [["K", "AO", "L"]]


def test_read_lexicon_errors(tmp_path):
    (tmp_path / "a.txt").write_text("ZERO\n")
    with pytest.raises(ValueError, match="a.txt:1"):
        read_lexicon(tmp_path / "a.txt")
    (tmp_path / "b.txt").write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_lexicon(tmp_path / "b.txt")


def test_exact_pronunciations():
    words = ["ONE", "TWO", "THREE", "ZERO", "SEVEN", "SEVEN", "EIGHT", "NINE", "FOUR"]
    assert words_from_phones(_phones(*words), DIGIT_LEXICON) == words
    everything = _phones(*DIGIT_WORDS)
    assert words_from_phones(everything, DIGIT_LEXICON, DIGIT_WORDS) == list(DIGIT_WORDS)
    assert words_from_phones("w ah n t uw", DIGIT_LEXICON) == ["ONE", "TWO"]


def test_substituted_phone():
    phones = _phones("SIX", "SEVEN", "FIVE")
    phones[5] = "F"  # S EH *F* AH N
    assert words_from_phones(phones, DIGIT_LEXICON) == ["SIX", "SEVEN", "FIVE"]


def test_inserted_garbage():
    phones = _phones("ONE", "TWO")
    assert words_from_phones(phones[:3] + ["ZH"] + phones[3:], DIGIT_LEXICON) == ["ONE", "TWO"]
    assert words_from_phones(["ZH", "ZH", "ZH", "ZH"], DIGIT_LEXICON) == []
    assert words_from_phones([], DIGIT_LEXICON) == []


def test_partial_word_counts():
    assert words_from_phones(["EY"], DIGIT_LEXICON) == ["EIGHT"]
    assert words_from_phones(_phones("NINE")[:2] + _phones("TWO"), DIGIT_LEXICON) == [
        "NINE",
        "TWO",
    ]


def test_restricted_words():
    lex = {"WON": [["W", "AH", "N"]], **DIGIT_LEXICON}
    assert words_from_phones(_phones("ONE"), lex) == ["WON"]
    assert words_from_phones(_phones("ONE"), lex, words=DIGIT_WORDS) == ["ONE"]
    with pytest.raises(ValueError, match="ELEVEN"):
        words_from_phones(_phones("ONE"), lex, words=["ELEVEN"])
