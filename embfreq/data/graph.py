"""Item statistics from the training interactions: frequency and the co-occurrence operator."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

NORMALIZATIONS = ("left", "sym", "none")


def interaction_matrix(users: np.ndarray, items: np.ndarray, num_users: int, num_items: int) -> sp.csr_matrix:
    """Users x items count matrix R; repeated interactions add up."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    data = np.ones(len(users), dtype=np.float64)
    r = sp.coo_matrix((data, (users, items)), shape=(num_users, num_items)).tocsr()
    r.sum_duplicates()
    return r


def item_frequency(items: np.ndarray, num_items: int) -> np.ndarray:
    """Training frequency per item: every interaction counts, repeats included."""
    return np.bincount(np.asarray(items, dtype=np.int64), minlength=num_items).astype(np.int64)


def cooccurrence(r: sp.csr_matrix) -> sp.csr_matrix:
    """A = R^T R, diagonal included, as sorted CSR."""
    rt = r.T.tocsr()
    a = (rt @ r).tocsr()
    a.sum_duplicates()
    a.sort_indices()
    return a


def normalize(a: sp.csr_matrix, normalization: str = "left") -> sp.csr_matrix:
    """`left`: D^-1 A (rows sum to 1, empty rows stay empty); `sym`: D^-1/2 A D^-1/2."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}")
    if normalization == "none":
        return a.tocsr(copy=True)
    deg = np.asarray(a.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        if normalization == "left":
            inv = np.where(deg > 0, 1.0 / deg, 0.0)
            out = sp.diags(inv) @ a
        else:
            inv = np.where(deg > 0, 1.0 / np.sqrt(deg), 0.0)
            out = sp.diags(inv) @ a @ sp.diags(inv)
    out = out.tocsr()
    out.eliminate_zeros()
    out.sort_indices()
    return out


def top_k_per_row(a: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Keep the k largest entries of each row (ties broken by lower column index)."""
    if k <= 0:
        raise ValueError(f"max_neighbours must be positive, got {k}")
    a = a.tocsr()
    counts = np.diff(a.indptr)
    if counts.max(initial=0) <= k:
        return a.copy()
    rows = np.repeat(np.arange(a.shape[0]), counts)
    # order within each row by descending value, then column
    order = np.lexsort((a.indices, -a.data, rows))
    pos_in_row = np.arange(len(order)) - np.repeat(a.indptr[:-1], counts)
    keep = order[pos_in_row < k]
    keep.sort()
    out = sp.csr_matrix((a.data[keep], a.indices[keep], np.r_[0, np.cumsum(np.minimum(counts, k))]), shape=a.shape)
    out.sort_indices()
    return out


def build_operator(
    users: np.ndarray,
    items: np.ndarray,
    num_users: int,
    num_items: int,
    normalization: str = "left",
    max_neighbours: int | None = None,
) -> sp.csr_matrix:
    """Normalised co-occurrence of the training interactions, num_items x num_items, sparse.

    `max_neighbours` keeps each row's top-k co-occurrence counts before normalising, which bounds
    the memory of dense rows (popular items co-occur with nearly everything).
    """
    a = cooccurrence(interaction_matrix(users, items, num_users, num_items))
    if max_neighbours is not None:
        a = top_k_per_row(a, int(max_neighbours))
    return normalize(a, normalization)


def to_torch_csr(m: sp.csr_matrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A scipy CSR matrix as a torch sparse CSR tensor (int64 indices)."""
    m = m.tocsr()
    return torch.sparse_csr_tensor(
        torch.from_numpy(m.indptr.astype(np.int64)),
        torch.from_numpy(m.indices.astype(np.int64)),
        torch.from_numpy(m.data).to(dtype),
        size=m.shape,
        check_invariants=False,
    )
