"""Prometheus metrics: HTTP requests, GitLab calls, database transactions and the job queue,
served at ``/metrics``.

Counters and histograms live in :mod:`.instruments`; under gunicorn (several worker processes plus
the background worker) prometheus_client's multiprocess mode adds them up across processes, while
the queue gauges are read from the database once per scrape (:mod:`.queue_gauges`).
"""
