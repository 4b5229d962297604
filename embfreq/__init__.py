"""embfreq: is every item worth its own learnable embedding?

The reusable part is the item table: ``from embfreq import SmoothedItemEmbedding`` (the other tables
are in ``embfreq.nn``, the band value is ``embfreq.band.Band``).
"""

__version__ = "0.1.0"


def __getattr__(name):
    # lazy, so `python -m embfreq.prepare` does not pay for importing torch
    if name == "SmoothedItemEmbedding":
        from embfreq.nn.smoothed_embedding import SmoothedItemEmbedding

        return SmoothedItemEmbedding
    if name == "Band":
        from embfreq.band import Band

        return Band
    raise AttributeError(name)


__all__ = ["SmoothedItemEmbedding", "Band"]
