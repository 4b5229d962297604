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


def cooccurrence(r: sp.csr_matrix, max_neighbours: int | None = None,
                 block_products: int = 1 << 24) -> sp.csr_matrix:
    """A = R^T R, diagonal included, as sorted CSR; with `max_neighbours`, each row's top-k only.

    With `max_neighbours`, the product is built in blocks of item rows (about `block_products`
    multiply-adds each) and each block is cut to its top-k at once, so peak memory is the kept
    result plus one block, not the full product.
    """
    r = r.tocsr()
    rt = r.T.tocsr()
    n = rt.shape[0]
    if max_neighbours is not None and max_neighbours <= 0:
        raise ValueError(f"max_neighbours must be positive, got {max_neighbours}")
    user_nnz = np.diff(r.indptr)
    # multiply-adds of row i = sum of the row lengths of its users: an upper bound on its nnz
    work = np.bincount(r.indices, weights=np.repeat(user_nnz, user_nnz).astype(np.float64), minlength=n)[:n]
    ends = np.cumsum(work)
    if max_neighbours is None:
        block_products = np.inf  # the whole product is kept anyway: one block, no concatenation
    blocks, start = [], 0
    while start < n:
        base = ends[start - 1] if start else 0.0
        stop = max(int(np.searchsorted(ends, base + block_products, side="right")), start + 1)
        a = (rt[start:stop] @ r).tocsr()  # no duplicate entries; columns unsorted
        if max_neighbours is not None:
            a = _top_k_unsorted(a, int(max_neighbours))
        else:
            a.sum_duplicates()
            a.sort_indices()
        blocks.append(a)
        start = stop
    if len(blocks) == 1:
        return blocks[0]
    if not blocks:
        return sp.csr_matrix(r.shape[1:] * 2, dtype=r.dtype)
    nnz = sum(b.nnz for b in blocks)
    idx = np.int32 if nnz < np.iinfo(np.int32).max else np.int64
    indptr = np.zeros(n + 1, dtype=idx)
    np.cumsum(np.concatenate([np.diff(b.indptr) for b in blocks]), out=indptr[1:])
    indices = np.concatenate([b.indices.astype(idx, copy=False) for b in blocks])
    data = np.concatenate([b.data for b in blocks])
    del blocks
    out = sp.csr_matrix((data, indices, indptr), shape=(n, r.shape[1]))
    out.has_sorted_indices = True
    return out


def normalize(a: sp.csr_matrix, normalization: str = "left") -> sp.csr_matrix:
    """`left`: D^-1 A (rows sum to 1, empty rows stay empty); `sym`: D^-1/2 A D^-1/2."""
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}")
    if normalization == "none":
        return a.tocsr(copy=True)
    a = a.tocsr()
    deg = np.asarray(a.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        inv = np.where(deg > 0, 1.0 / (deg if normalization == "left" else np.sqrt(deg)), 0.0)
    # entry-wise scaling, the same products as diag(inv) @ A (@ diag(inv)) without the sparse matmuls
    data = a.data * np.repeat(inv, np.diff(a.indptr))
    if normalization == "sym":
        data *= inv[a.indices]
    out = sp.csr_matrix((data, a.indices.copy(), a.indptr.copy()), shape=a.shape)
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
    keep = _top_k_keep_integral(a, counts, k) if a.has_canonical_format else None
    if keep is None:
        rows = np.repeat(np.arange(a.shape[0]), counts)
        # order within each row by descending value, then column
        order = np.lexsort((a.indices, -a.data, rows))
        pos_in_row = np.arange(len(order)) - np.repeat(a.indptr[:-1], counts)
        keep = order[pos_in_row < k]
        keep.sort()
    out = sp.csr_matrix((a.data[keep], a.indices[keep], np.r_[0, np.cumsum(np.minimum(counts, k))]), shape=a.shape)
    out.sort_indices()
    return out


def _top_k_unsorted(a: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """`top_k_per_row` of a CSR block without duplicate entries whose columns need not be sorted yet."""
    counts = np.diff(a.indptr)
    keep = _top_k_keep_integral(a, counts, k) if counts.max(initial=0) > k else np.arange(a.nnz)
    if keep is None:
        a.sum_duplicates()
        return top_k_per_row(a, k)
    out = sp.csr_matrix((a.data[keep], a.indices[keep], np.r_[0, np.cumsum(np.minimum(counts, k))]), shape=a.shape)
    out.sort_indices()
    return out


def _top_k_keep_integral(a: sp.csr_matrix, counts: np.ndarray, k: int, chunk: int = 1 << 23) -> np.ndarray | None:
    """Positions of the entries `top_k_per_row` keeps, ascending; None when this fast path does not apply.

    The caller guarantees no duplicate (row, column) entries; columns need not be sorted.
    For integer-valued data (co-occurrence counts), each entry of a row
    longer than k gets the unique int64 key (row, max - value, column); one plain sort per chunk of
    rows gives each row's k-th smallest key, and the kept entries are those with keys up to it.
    Same selection as the lexsort, several times faster, and memory bounded by the chunk.
    """
    data = a.data
    if len(data) == 0:
        return None
    if data.dtype.kind == "f":
        if not np.isfinite(data).all() or not np.array_equal(data, np.floor(data)):
            return None
    elif data.dtype.kind not in "iu":
        return None
    lo, hi = int(data.min()), int(data.max())
    span = hi - lo + 1
    ncols = max(a.shape[1], 1)
    if span * ncols >= 1 << 62:
        return None
    max_rows = max(((1 << 62) // (span * ncols)), 1)
    long_rows = np.flatnonzero(counts > k)
    keep_mask = np.repeat(counts <= k, counts)
    i = 0
    while i < len(long_rows):
        # consecutive long rows, bounded in entries and in key range
        j = i + 1
        budget = counts[long_rows[i]]
        j_max = min(len(long_rows), i + max_rows)
        if j < j_max:
            c = np.cumsum(counts[long_rows[i + 1:j_max]]) + budget
            j += int(np.searchsorted(c, chunk, side="right"))
        rows = long_rows[i:j]
        c = counts[rows]
        start = a.indptr[rows]
        pos = np.repeat(start - np.cumsum(c) + c, c) + np.arange(int(c.sum()))  # entry positions
        local = np.repeat(np.arange(len(rows), dtype=np.int64), c)
        key = (local * span + (hi - data[pos].astype(np.int64))) * ncols + a.indices[pos]
        kth = np.sort(key)[np.cumsum(c) - c + (k - 1)]  # each row's k-th smallest key
        keep_mask[pos] = key <= np.repeat(kth, c)
        i = j
    return np.flatnonzero(keep_mask)


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
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"unknown normalization {normalization!r}; expected one of {NORMALIZATIONS}")
    r = interaction_matrix(users, items, num_users, num_items)
    a = cooccurrence(r, None if max_neighbours is None else int(max_neighbours))
    del r
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
