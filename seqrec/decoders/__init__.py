from seqrec.decoders.greedy import greedy_decode

__all__ = ["greedy_decode"]
