"""embfreq: is every item worth its own learnable embedding?"""

__version__ = "0.1.0"


def __getattr__(name):
    # lazy, so `python -m embfreq.prepare` does not pay for importing the models
    if name == "SmoothedItemEmbedding":
        from embfreq.nn.smoothed_embedding import SmoothedItemEmbedding

        return SmoothedItemEmbedding
    raise AttributeError(name)


__all__ = ["SmoothedItemEmbedding"]
