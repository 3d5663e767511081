"""What keeps the gateway answering when upstreams fail or callers flood it.

- ``state``: counters and flags shared by every worker (in this process, or in Redis);
- ``breaker``: a circuit breaker per member;
- ``limits``: requests, tokens and concurrent requests per key, user and unit.
"""
