"""Bulk restore: a job selects many objects, a planner fans them out as chunk messages over the
platform's queue, workers restore each chunk at a paced rate and write per-object report rows.

Modules, one job each: ``schemas`` (the job and chunk messages), ``selection`` (listing and
manifests as streams), ``planner`` (filter, chunk, publish, dry-run summary), ``pacing`` (the
per-worker rate that keeps the whole job under the provider's limit), ``worker`` (one chunk),
``report`` (rows, progress, the job-completed event), ``queues`` (where chunks are published),
``gcs_server_side`` (objects.bulkRestore and its long-running operation).
"""
