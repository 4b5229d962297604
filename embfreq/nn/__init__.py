"""Plain-torch building blocks: the item tables (one per strategy for band items) and the encoders.

Every item table takes ``(num_embeddings, embedding_dim, item_freq, operator=None, lower_freq=None,
upper_freq=None, *, padding_idx=None, <options>)`` or ``.from_interactions(users, items, num_embeddings,
embedding_dim, ...)``, and its ``weight`` is the effective table that ``forward`` uses.
"""

from embfreq.nn.item_table import ItemTable, interaction_statistics
from embfreq.nn.smoothed_embedding import SmoothedItemEmbedding
from embfreq.nn.substitutes import HashedItemEmbedding, MixedDimItemEmbedding, QRItemEmbedding, SharedItemEmbedding

# config name (conf/item_table/<name>.yaml, reports) -> table class
ITEM_TABLES = {cls.strategy: cls for cls in (SmoothedItemEmbedding, SharedItemEmbedding, HashedItemEmbedding,
                                              MixedDimItemEmbedding, QRItemEmbedding)}

__all__ = ["ItemTable", "SmoothedItemEmbedding", "SharedItemEmbedding", "HashedItemEmbedding",
           "MixedDimItemEmbedding", "QRItemEmbedding", "ITEM_TABLES", "interaction_statistics"]
