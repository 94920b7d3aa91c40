"""`make chaos`: fault scenarios against the devstack (see RELIABILITY.md for the figures).

Beside the product like devstack/: it may import anything, and the product never imports it.
"""
