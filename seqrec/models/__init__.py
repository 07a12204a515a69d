from seqrec.models.blstm import BiLSTMCTC, ModelConfig

__all__ = ["BiLSTMCTC", "ModelConfig"]
