"""Pool scoring on a Ray cluster (extra ``dropkit[ray]``): `RayScorer`, `score_dataset`.

The pool is cut into chunks of consecutive rows; a pool of actors, each holding the model
(shipped once per actor), scores them and sends back only per-example scores, never samples.
`RayScorer` keeps its actors between calls (an active-learning loop scores every round);
`score_dataset` is the one-call form. Chunk ``i`` is seeded from ``(seed, i)`` exactly as
`dropkit.active.score_pool` seeds it, so the scores equal single-process scoring bitwise on
CPU (same thread count).

`RayJobs` runs an experiment's independent jobs (the lab's claims x seeds, the UCI benchmark's
groups of splits) as Ray tasks, behind `dropkit.experiments.jobs.JobRunner`.
"""

from dropkit.distributed.chunks import to_chunks
from dropkit.distributed.jobs import RayJobs
from dropkit.distributed.ray_scoring import score_dataset
from dropkit.distributed.scorer import DistributedScores, RayScorer

__all__ = ["DistributedScores", "RayJobs", "RayScorer", "score_dataset", "to_chunks"]
