"""Operator tools that run the whole system on loopback: the chaos run and the bench.

Only the CLI's ``chaos`` and ``bench`` commands (and the tests) import this
package; it may start the simulators, and no service module imports it.
"""
