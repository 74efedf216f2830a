"""Background tasks: a run executed by a worker, surviving restarts of either side."""
