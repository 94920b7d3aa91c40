"""controller-runtime in miniature: work queue, workers, manager, leader election, clock.

It knows nothing about meshes, so it can be tested (and trusted) on its own.
"""
