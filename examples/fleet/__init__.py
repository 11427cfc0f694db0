"""A fleet: Redis, scaled workers, a producer and a progress subscriber (docker-compose.yml).

Workers run :func:`examples.fleet.tasks.resize`; :mod:`examples.fleet.producer` enqueues
a batch of them and :mod:`examples.fleet.subscriber` follows the queue's events live.
"""
