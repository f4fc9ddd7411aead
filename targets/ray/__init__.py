"""The Ray back end: run any spec on a Ray cluster, and package it as a Ray job.

`executor` is the scheduler `runtime.executor.execute` runs nodes with (one Ray
task per node, sharing selection, reporting, model cards and run records with the
local executor); `worker` is what runs inside a Ray worker; `cluster` connects to
(or starts) Ray and checks what it can provide; `jobs` is the `ray` compile target.
Only `executor`, `worker` and `cluster` import ray, so compiling needs no Ray.
"""
