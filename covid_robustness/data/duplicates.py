"""Near-duplicate images: perceptual hashes, groups of images within a Hamming distance, leakage counts.

The hash is a 256-bit pHash (imagehash, hash_size=16) of each decoded image. The usual 64-bit pHash
cannot tell a re-post from another child's X-ray: in the cxr folder's pediatric images different
patients lie 2 bits apart, as close as a re-encoded copy. At 256 bits, copies that are re-encoded,
resized, gamma-shifted or 15 % brighter stay within 20 bits (25 % brighter, with clipping: 30), while
two different X-rays lie 38 bits apart or more. Crops and rotations move the hash as far as a different
image does: they are not detected.
"""

import imagehash
import numpy as np
from PIL import Image
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

HASH_SIZE = 16  # hash_size x hash_size bits
HASH_NAME = f"phash{HASH_SIZE}"  # part of the cache key: another hash makes another entry
HASH_BITS = HASH_SIZE * HASH_SIZE
_POPCOUNT = np.unpackbits(np.arange(1 << 16, dtype=">u2").view(np.uint8)).reshape(-1, 16).sum(1, dtype=np.uint8)
_ROWS = 128  # rows per block: bounds the rows x N x 16 uint16 intermediate


def image_hashes(images: np.ndarray) -> np.ndarray:
    """uint8 N x HASH_BITS/8: each uint8 grayscale image's pHash, bits packed."""
    if not len(images):
        return np.zeros((0, HASH_BITS // 8), np.uint8)
    return np.stack([np.packbits(imagehash.phash(Image.fromarray(x), hash_size=HASH_SIZE).hash) for x in images])


def within(a: np.ndarray, b: np.ndarray, max_distance: int) -> np.ndarray:
    """bool len(a) x len(b): which pairs of packed hashes differ in at most max_distance bits."""
    a, b = a.view(np.uint16), b.view(np.uint16)  # a 16-bit popcount table: half the lookups of 8-bit
    return np.concatenate(
        [
            _POPCOUNT[a[i : i + _ROWS, None] ^ b[None]].sum(-1, dtype=np.int32) <= max_distance
            for i in range(0, len(a), _ROWS)
        ]
        or [np.zeros((0, len(b)), bool)]
    )


def near_duplicate_groups(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """Group id per image, 0..G-1 in order of each group's first image; images within max_distance of
    each other share a group, transitively (connected components of the near-duplicate graph)."""
    i, j = np.nonzero(within(hashes, hashes, max_distance))
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(len(hashes),) * 2)
    return connected_components(graph, directed=False)[1]


def group_members(groups: np.ndarray) -> list[np.ndarray]:
    """The image indices of each group, ascending."""
    order = np.argsort(groups, kind="stable")
    return np.split(order, np.cumsum(np.bincount(groups))[:-1])


def group_labels(labels: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each group's most common label (ties: the lowest)."""
    counts = np.zeros((groups.max(initial=-1) + 1, labels.max(initial=0) + 1), np.int64)
    np.add.at(counts, (groups, labels), 1)
    return counts.argmax(1)


def mixed_label_groups(labels: np.ndarray, groups: np.ndarray) -> int:
    """How many groups hold images of more than one label."""
    pairs = np.unique(groups * (labels.max(initial=0) + 1) + labels)  # one entry per (group, label)
    return int((np.bincount(pairs // (labels.max(initial=0) + 1)) > 1).sum())


def count_leaked(hashes: np.ndarray, query: np.ndarray, reference: np.ndarray, max_distance: int) -> int:
    """How many images of `query` (indices) have a near-duplicate among `reference` (indices)."""
    return int(within(hashes[query], hashes[reference], max_distance).any(1).sum())
