"""The durable queue: procrastinate jobs, one running job per entity key."""
