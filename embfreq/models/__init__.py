from embfreq.models.mf_bpr import MFBPR
from embfreq.models.sequential import GRU4Rec, SASRec

__all__ = ["MFBPR", "SASRec", "GRU4Rec"]
