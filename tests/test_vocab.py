import pytest

from seqrec.vocab import (
    BLANK,
    BLANK_ID,
    UnknownSymbolError,
    Vocabulary,
    tokenize,
)


def test_round_trip_chars():
    v = Vocabulary.from_transcripts(["hello world", "low"], "char")
    assert v.symbols[BLANK_ID] == BLANK
    ids = v.encode("hello world")
    assert BLANK_ID not in ids
    assert v.decode(ids) == "hello world"
    assert Vocabulary.from_dict(v.to_dict()) == v


def test_round_trip_phones_and_blank_dropped():
    v = Vocabulary.from_transcripts(["AH B", "K AH"], "phone")
    assert v.symbols == (BLANK, "AH", "B", "K")
    assert v.decode([0, 1, 0, 3, 0]) == "AH K"
    assert v.decode(v.encode("K  B AH")) == "K B AH"


def test_unknown_symbol_names_file_and_symbol():
    v = Vocabulary.from_transcripts(["AH B"], "phone")
    with pytest.raises(UnknownSymbolError, match=r"a/b\.wav.*'ZZ'"):
        v.encode("AH ZZ", source="a/b.wav")


def test_blank_token_in_a_transcript_is_rejected():
    v = Vocabulary.from_transcripts([f"{BLANK} A"], "phone")
    assert v.symbols == (BLANK, "A")
    with pytest.raises(UnknownSymbolError):
        v.encode(f"A {BLANK}")


def test_tokenize_collapses_whitespace():
    assert tokenize("  a  b ", "char") == ["a", " ", "b"]
    assert tokenize("A  B", "word") == ["A", "B"]
    with pytest.raises(ValueError):
        tokenize("x", "syllable")


def test_invalid_symbol_tables():
    with pytest.raises(ValueError):
        Vocabulary(("a", "b"))
    with pytest.raises(ValueError):
        Vocabulary((BLANK, "a", "a"))
