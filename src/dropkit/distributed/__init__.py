"""Pool scoring on a Ray cluster (extra ``dropkit[ray]``): `score_dataset`, `to_chunks`.

The pool is cut into chunks of consecutive rows; an actor pool scores them with the model
shipped once per actor (through Ray's object store) and sends back only per-example scores,
never samples. Chunk ``i`` is seeded from ``(seed, i)`` exactly as `dropkit.active.score_pool`
seeds it, so the scores equal single-process scoring bitwise on CPU (same thread count).
"""

from dropkit.distributed.chunks import to_chunks
from dropkit.distributed.ray_scoring import DistributedScores, score_dataset

__all__ = ["DistributedScores", "score_dataset", "to_chunks"]
