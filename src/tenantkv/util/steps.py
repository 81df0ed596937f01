"""Generators of steps: the form of every job that may run in slices
(dispatch/slices.py drives one a slice at a time, between other tenants'
commands). Where the same job is small enough, or must run whole (inside
EXEC, a save, a digest), it runs here to its end."""


def run_whole(steps):
    """Drive the generator `steps` to its end: the value it returns."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value
