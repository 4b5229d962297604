"""Figures: shared style, band heatmaps and frontier, NDCG heatmaps, the budget figure, per-item plots."""
