"""CTC decoders: greedy best path, prefix beam search with n-gram LMs, forced alignment."""

from seqrec.decoders.greedy import greedy_decode
from seqrec.decoders.options import EMBEDDED_LM, Alternative, DecodeOptions, Hypothesis

__all__ = ["EMBEDDED_LM", "Alternative", "DecodeOptions", "Hypothesis", "greedy_decode"]
