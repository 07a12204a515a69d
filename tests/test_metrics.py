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
